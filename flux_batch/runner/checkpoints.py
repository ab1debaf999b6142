"""When to rewrite a running run's tables (manifest.csv and run.json; metadata.parquet waits for the run's
end, see :mod:`flux_batch.outputs.snapshot`) from its state, and when to copy its state's write-ahead log
into the database (:meth:`~flux_batch.runner.state.store.Store.log_checkpoints_elsewhere`).

A checkpoint rewrites whole CSV files: on a big folder that takes long enough that, on the event loop,
every create slot passing meanwhile would be released at once when it ends. So it runs in a thread (the
loop keeps its pace), one at a time (never two writers), and spaced so that checkpoints take at most
1/:data:`CHECKPOINT_SPACING` of the run's time. A full disk stops the run at once; any other failure is a
notice, and the next checkpoint is tried (the final one, written by the session, reports errors).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flux_batch.errors import DiskFullError, FluxBatchError

#: Checkpoints are at least this many times their own duration apart (and ``every_s``).
CHECKPOINT_SPACING = 50


class Checkpoints:
    """Schedules ``checkpoint`` (called in a worker thread) at most every ``every_s`` seconds, and at least
    ``spacing`` times its last duration after it ended. ``what`` names it in a notice of its failure."""

    def __init__(
        self,
        checkpoint: Callable[[], None] | None,
        *,
        every_s: float,
        spacing: float = CHECKPOINT_SPACING,
        what: str = "rewrite the run's tables",
        clock: Callable[[], float],
        stop: Callable[[FluxBatchError], None],
        notice: Callable[[str], None],
    ) -> None:
        self._checkpoint = checkpoint
        self._min_every = every_s
        self._every = every_s
        self._spacing = spacing
        self._what = what
        self._clock = clock
        self._stop = stop
        self._notice = notice
        self._last = clock()
        self.running: asyncio.Future[None] | None = None

    def maybe(self) -> None:
        """Start a checkpoint when one is due and none is running."""
        if self._checkpoint is None or self.running is not None:
            return
        if self._clock() - self._last >= self._every:
            self.running = asyncio.ensure_future(self._in_thread(self._checkpoint))

    async def wait(self) -> None:
        """Wait for the checkpoint running, if any (the caller then writes the final tables)."""
        if self.running is not None:
            await self.running

    async def _in_thread(self, checkpoint: Callable[[], None]) -> None:
        started = self._clock()
        try:
            await asyncio.to_thread(checkpoint)
        except DiskFullError as err:  # the disk is full: stop now, not at the next image
            self._stop(err)
        except Exception as exc:  # a missed checkpoint must not stop the run; the final one reports errors
            self._notice(f"could not {self._what} this time: {exc}")
        finally:
            self._last = self._clock()
            took = self._last - started
            self._every = max(self._min_every, self._spacing * took)
            self.running = None
