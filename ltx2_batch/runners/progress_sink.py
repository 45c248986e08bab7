"""One launch's progress channel on Ray: render workers put chunk and step events in, the driver takes them.

A small actor per launch, owned by its driver (it ends with the driver, so a pool owner that finds it gone
knows the launch is gone: `ping`). Workers put step events without waiting (a bar that misses an update is
not worth slowing a render for) and chunk events waiting for the put (a chunk row must reach the driver
before the job's final row); the driver takes everything in one call per poll.
Must not: import the model stack, or decide anything (the driver records, runners/ray.py).
"""

from __future__ import annotations

MAX_ITEMS = 100_000  # a driver that stopped taking does not grow this without bound


class ProgressSink:
    """Ray actor body (async: puts from many workers never wait behind a take)."""

    def __init__(self) -> None:
        self._items: list[object] = []
        self.dropped = 0

    async def put(self, item: object) -> None:
        """Keep one event; past MAX_ITEMS an event is dropped and counted."""
        if len(self._items) < MAX_ITEMS:
            self._items.append(item)
        else:
            self.dropped += 1

    async def take(self) -> list[object]:
        """Everything put since the last take, in the order it came."""
        items, self._items = self._items, []
        return items

    async def ping(self) -> bool:
        """True while the sink is alive: the owner's sign that the launch's driver still is."""
        return True
