"""Group commit: one fsync made durable for every caller that committed before it started.

A create's intent must be on disk before the create is sent (:meth:`Store.begin_attempt`). A commit that
fsyncs itself (SQLite's ``synchronous=FULL``) blocks the event loop for the fsync: 4 ms here at the median,
16 ms at the 95th percentile and up to 170 ms on a busy disk, a hundred times a second at 6,000 creates a
minute. The loop then answered nothing meanwhile, and the creates it let go after such a wait left together
(the server counted bursts: 429s). Instead the intent is committed without an fsync and then
:class:`GroupSync` is awaited: it fsyncs the write-ahead log in a worker thread, and every intent committed
before that fsync began shares it. The guarantee is the same (no create is sent before its intent is
fsynced); the loop goes on with other work while the disk syncs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class GroupSync:
    """``await sync()`` returns once an fsync that began after the call has ended. ``fsync`` runs one (in
    a worker thread, for a real file); at most one runs at a time."""

    def __init__(self, fsync: Callable[[], Awaitable[None]]) -> None:
        self._fsync = fsync
        self._asked = 0  # callers so far; the n-th committed before it asked
        self._synced = 0  # callers covered by a finished fsync
        self._flight: asyncio.Future[None] | None = None
        self.fsyncs = 0

    def __repr__(self) -> str:
        return f"<GroupSync asked={self._asked} synced={self._synced} fsyncs={self.fsyncs}>"

    async def __call__(self) -> None:
        self._asked += 1
        mine = self._asked
        while self._synced < mine:
            if self._flight is None:
                self._flight = asyncio.ensure_future(self._one())
            # Shielded: a caller given up on (its job cancelled) does not stop the fsync the others wait on.
            await asyncio.shield(self._flight)

    async def _one(self) -> None:
        covers = self._asked  # every commit made before this fsync begins
        try:
            self.fsyncs += 1
            await self._fsync()
            self._synced = max(self._synced, covers)
        finally:
            self._flight = None
