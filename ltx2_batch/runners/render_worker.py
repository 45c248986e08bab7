"""The render worker, a Ray actor: one warm backend for its whole life, serving the launches of its pool.

Built from a WorkerSpec (what it loads and keeps); each `render` call carries the RunSpec of the launch it
is for (where and how that launch writes), its progress sink and the lease it runs under, so one warm
worker serves launches into different output dirs, one after another or interleaved. What it owns:
- refusing to serve when it cannot (a setting its device cannot run, missing weights, or code other than
  the launch's: `where` says why, and the run stops once with that message);
- cooperative cancel: `cancel(run_id)` stops that launch's render at its next denoising step (or chunk)
  and its queued calls before they start; other launches' jobs on this worker go on. Ray cannot cancel a
  running actor task, and killing a shared worker would take every launch's job and the warm model with it;
- telling its pool's owner when a lease ends (the render returned), with what it now has loaded;
- reporting itself for `pool status`: node, GPUs, memory, jobs served and in hand, pipeline builds
  (`stats`; not its process title, which Ray sets per call and any concurrent call, `lifeline` among
  them, overwrites);
- `lifeline`, a call that never returns: the owner holds one per worker and learns of its death when it
  fails; a detached worker holds one on its owner the same way, and ends itself when the owner is gone.
Must not: write the ledger, choose jobs, or retry (the driver does, runners/ray.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import ray

from ltx2_batch.core.code_identity import code_hash
from ltx2_batch.core.jobs import PipelineKind, RenderJob
from ltx2_batch.core.outcome import JobOutcome, OutcomeStatus
from ltx2_batch.core.scheduler import affinity_key
from ltx2_batch.errors import Ltx2BatchError
from ltx2_batch.worker.executor import RunOutput
from ltx2_batch.worker.spec import RunSpec, WorkerSpec, build_executor, renders_on_cuda, run_output

_CANCELS_KEPT = 256  # run ids remembered as cancelled (a launch's late calls still see its cancel)
_MIB = 1 << 20


class RenderWorker:
    """Ray actor body. `name` is its display name (`ray-3`); `owner` the pool owner's handle (None: no
    pool, as in unit use); `code` the code hash the launch expects this worker to run."""

    def __init__(
        self,
        spec: WorkerSpec,
        name: str,
        owner: Any = None,
        code: str | None = None,
        watch_owner: bool = False,
    ) -> None:
        self._name = name
        self._owner = owner
        # On a cluster (or several nodes on one host) the Ray node id tells nodes apart, the hostname may not.
        self._node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
        # A setting this worker's device cannot run (fp8 without CUDA, a missing file) is found before any
        # weights load; the actor stays up to say so (`where`), so the driver stops the run once, with the
        # tool's own message and no traceback.
        self._refusal: str | None = None
        mine = code_hash()
        if code is not None and code != mine:
            self._refusal = (
                f"this node's ltx2_batch code ({mine}) is not the launch's ({code}): install the same "
                "version on every node (the pool never mixes code versions)"
            )
        else:
            try:
                self._executor = build_executor(spec, name, node=self._node)
            except Ltx2BatchError as exc:
                self._refusal = str(exc)
        # With an overlap (output.overlap) the actor takes two calls at once: renders never overlap (this
        # lock), but call n waits for its encode (and decode) while call n+1 renders.
        self._render_lock = threading.Lock()
        self._outputs: dict[str, RunOutput] = {}  # per launch (run id): its writer and settled overlap
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._served = 0
        self._rendering: list[str] = []  # job ids handed to the executor and not yet returned
        self._forever = threading.Event()  # never set: `lifeline` waits on it
        if watch_owner and owner is not None:
            threading.Thread(target=self._end_with_owner, name="owner-watch", daemon=True).start()

    def where(self) -> dict[str, str]:
        """Who and where this worker is, and whether it renders on CUDA; or why it cannot render."""
        if self._refusal is not None:
            return {"worker": self._name, "refusal": self._refusal}
        return {
            "worker": self._name,
            "pid": str(os.getpid()),
            "node": self._node,
            "ip": ray.util.get_node_ip_address(),
            "gpus": ",".join(str(g) for g in ray.get_gpu_ids()),
            "cuda": "1" if renders_on_cuda(self._executor) else "",
        }

    def warm(self, pipeline: PipelineKind) -> float:
        """Load what `pipeline` needs now (without LoRAs), as a first job would: `pool up` has a pool ready
        before its first launch. Returns the seconds spent loading."""
        with self._render_lock:
            return self._executor.backend.prepare(pipeline, ())

    def lifeline(self) -> None:
        """Returns only with this actor's death (as an error to whoever waits on it)."""
        self._forever.wait()

    def cancel(self, run_id: str) -> None:
        """Stop launch `run_id`'s jobs here: the render in progress at its next step, queued ones at once."""
        self._cancelled[run_id] = None
        while len(self._cancelled) > _CANCELS_KEPT:
            self._cancelled.popitem(last=False)

    def stats(self) -> dict[str, object]:
        """For `pool status`: memory now, jobs served and in hand (`rendering`: their ids), and the backend's
        pipeline builds when it counts them (the fake backend does: `builds`)."""
        backend = getattr(getattr(self, "_executor", None), "backend", None)
        return {
            "pid": os.getpid(),
            "rss_mib": _rss_bytes() // _MIB,
            "gpu_mib": _gpu_bytes() // _MIB,
            "served": self._served,
            "rendering": list(self._rendering),
            "builds": getattr(backend, "builds", None),
        }

    def render(
        self, job: RenderJob, attempt: int, run: RunSpec, sink: Any = None, lease: str | None = None
    ) -> JobOutcome:
        """Render `job` for launch `run`; the lease ends (the owner is told) when this returns."""
        run_id = run.run.run_id
        served = False
        try:
            with self._render_lock:
                if run_id in self._cancelled:  # it waited behind another render while its launch cancelled
                    cancelled = OutcomeStatus.CANCELLED
                    return JobOutcome(job.job_id, cancelled, worker=self._name, error="run cancelled")
                self._rendering.append(job.job_id)  # submit renders here, unless an overlap hands it on
                future = self._executor.submit(
                    job,
                    self._output(run),
                    on_chunk=lambda done, chunk: _put(sink, (done.job_id, attempt, chunk), wait=True),
                    should_stop=lambda: run_id in self._cancelled,
                    on_step=lambda stepped, step: _put(sink, (stepped.job_id, attempt, step), wait=False),
                )
            outcome = future.result()
            served = outcome.status is not OutcomeStatus.CANCELLED
            return outcome
        finally:
            with contextlib.suppress(ValueError):  # refused before it was handed on
                self._rendering.remove(job.job_id)
            self._served += served
            if lease is not None and self._owner is not None:
                self._owner.released.remote(lease, affinity_key(job), served)

    def _output(self, run: RunSpec) -> RunOutput:
        out = self._outputs.get(run.run.run_id)
        if out is None:
            out = self._outputs[run.run.run_id] = run_output(run, cuda=renders_on_cuda(self._executor))
        return out

    def _end_with_owner(self) -> None:
        """A detached worker outlives every driver, but not its owner: when the owner's lifeline fails (it
        was killed, or its node died), this worker ends too, freeing its GPU."""
        with contextlib.suppress(Exception):
            ray.get(self._owner.lifeline.remote())
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


def _put(sink: Any, item: tuple[str, int, object], wait: bool) -> None:
    """A chunk event waits until the sink has it (its ledger row must come before the job's final row); a
    step event does not (a bar that misses an update is not worth slowing a render for)."""
    if sink is None:
        return
    with contextlib.suppress(ray.exceptions.RayError):
        ref = sink.put.remote(item)
        if wait:
            ray.get(ref, timeout=60)


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _gpu_bytes() -> int:
    """CUDA memory this process has reserved (0 without torch loaded or without CUDA)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0
    return int(sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count())))
