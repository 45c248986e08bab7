"""Ctrl-C and SIGTERM during a run: what the first signal does, and where it may land.

The first signal only asks to stop: dispatch ends and the runner cancels in-flight work. It interrupts the
main thread (KeyboardInterrupt) only while `interruptible` is set, i.e. while a local render runs there
(chunk rows are written with it cleared), so it never lands inside a ledger append or a runner's shutdown.
Ray runs poll `stop`. The exit code is the shell's: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType


@dataclass
class Interrupts:
    """What SIGINT/SIGTERM did to this run, and whether the main thread may be interrupted now."""

    stop: threading.Event = field(default_factory=threading.Event)
    interruptible: threading.Event = field(default_factory=threading.Event)
    signum: int | None = None
    closing: bool = False  # runners are shutting down: signals only record themselves

    @property
    def exit_code(self) -> int:
        """128 + the signal received (130 for Ctrl-C, which is also assumed when none was recorded)."""
        return 128 + (self.signum or signal.SIGINT)

    def begin_closing(self) -> None:
        """From now on a signal is recorded, never raised: the runner is being shut down."""
        self.closing = True
        self.interruptible.clear()


@contextmanager
def catching_signals(state: Interrupts) -> Iterator[Interrupts]:
    """SIGINT and SIGTERM recorded in `state` while the block runs; the previous handlers come back after."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        """Record the first signal and ask to stop; interrupt the main thread only while interruptible."""
        state.signum = state.signum or signum
        state.stop.set()
        if state.interruptible.is_set() and not state.closing:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
