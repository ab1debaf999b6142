"""What is made from each downloaded image, off the run's hot path: its thumbnail and its quality values
(perceptual hash and flags, :mod:`flux_batch.outputs.quality`), from one decode, in a worker process.

A download is recorded with its quality unknown (``flags`` NULL in the state) and the job goes on at once;
:class:`ImageWork` sends the file to a worker process and records what comes back, many images to a
transaction. Nothing is taken as made before it is recorded, and a recorded value names the file's hash,
so it never lands on a file downloaded again meanwhile. A run killed at any point leaves some images
unknown: the next run queues them again at its start (a thumbnail is written to a temporary name and
renamed, so a half-written one is never in its place), the report makes what it lacks itself, and an
export computes an unknown image's flags from the file. A run that ends normally waits for what is still
queued before it writes its final tables, so they are exact.

Why a process: decoding, hashing and thumbnailing an image costs more CPU than everything else the
runner does for a job, and in the runner's process it competes with the event loop for the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from flux_batch.errors import FluxBatchError
from flux_batch.outputs import derived as _derived
from flux_batch.outputs.derived import AHEAD_PER_WORKER, Derived, derive, threads, workers
from flux_batch.runner.state.store import Store

#: Images recorded per transaction, and the longest a result waits for its transaction, in seconds.
RECORD_BATCH = 64
RECORD_EVERY_S = 1.0
#: A run that ends with at least this many images still to make starts a helper for them (a worker
#: process's start and imports cost about as much CPU as this many images).
HELP_FROM = 64


@dataclass(frozen=True)
class Item:
    """A downloaded image to derive from: the output it is, and the file as recorded."""

    job_id: str
    idx: int
    file_name: str
    sha256: str


class ImageWork:
    """The images of one run still to derive from, sent to worker processes as they come."""

    def __init__(
        self,
        store: Store,
        out_dir: Path,
        *,
        thumbnails: bool = True,
        pool: Callable[[], Executor] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._out_dir = str(out_dir)
        self._thumbnails = thumbnails
        self._pool = pool
        self._clock = clock
        self._queue: deque[Item] = deque()
        self._running: set[asyncio.Future[Derived | None]] = set()
        self._results: list[tuple[Item, Derived]] = []
        self._last_record = clock()
        self._dead: set[Executor] = set()
        # Once: the number of cores is read from /sys at every call (twice an image, 1 % of a run's loop).
        self._ahead = workers() * AHEAD_PER_WORKER
        self._closed = False
        self._draining = False
        self.error: FluxBatchError | None = None
        self.done = 0

    def __repr__(self) -> str:
        return f"<ImageWork queued={len(self._queue)} running={len(self._running)} done={self.done}>"

    @property
    def pending(self) -> int:
        """Images queued or being worked on."""
        return len(self._queue) + len(self._running)

    def load_unknown(self) -> int:
        """Queue the folder's downloaded images whose quality is unknown (an earlier run was killed, or
        came before images were checked); return how many."""
        items = [Item(*row) for row in self._store.unknown_quality()]
        self._queue.extend(items)
        self._pump()
        return len(items)

    def add(self, job_id: str, idx: int, file_name: str, sha256: str) -> None:
        """A file is downloaded and recorded: derive from it."""
        self._queue.append(Item(job_id, idx, file_name, sha256))
        self._pump()

    async def drain(self) -> None:
        """Wait until every queued image is derived from and recorded. Raises the state's error, if
        recording failed (the images stay unknown; the next run makes them)."""
        # The run is over: the rest is helped with, unless so few that a helper's start would cost more.
        self._draining = self.pending >= HELP_FROM
        while self._queue or self._running:
            if self._running:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            self._pump()
        self._record()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop (an interrupted run): record what is made; what is not stays unknown for the next run."""
        self._queue.clear()
        for future in list(self._running):
            future.cancel()
        self._record()
        self._closed = True

    def _pump(self) -> None:
        if self.error is not None:
            self._queue.clear()
            return
        loop = asyncio.get_running_loop()
        ahead = self._ahead
        while self._queue:
            if len(self._running) < ahead:
                pool = (self._pool or _derived.shared_pool)()
            elif self._draining and len(self._running) < ahead + AHEAD_PER_WORKER:
                pool = self._helper(pool_in_use=(self._pool or _derived.shared_pool)())
            else:
                break
            item = self._queue.popleft()
            try:
                future = loop.run_in_executor(pool, derive, self._out_dir, item.file_name, self._thumbnails)
            except (BrokenProcessPool, RuntimeError):  # the pool died or was shut: another, or threads
                self._queue.appendleft(item)
                self._replace(pool)
                continue
            self._running.add(future)
            future.add_done_callback(functools.partial(self._finished, item=item, pool=pool))

    def _helper(self, *, pool_in_use: Executor) -> Executor:
        """Where the run's last images go besides the workers, once its jobs are over and its event loop
        is idle: one more worker process at the run's own priority (:func:`flux_batch.outputs.derived.
        helper_pool`; not the run's threads, whose imports would stay in its process for its final tables
        and report), or this process's threads where the images are not made in processes."""
        if isinstance(pool_in_use, ProcessPoolExecutor) and pool_in_use not in self._dead:
            return _derived.helper_pool()
        return threads()

    def _replace(self, pool: Executor) -> None:
        """``pool`` broke (a worker was killed, or ran out of memory): the next image goes to a new one;
        if that breaks too, the work is done in threads."""
        if pool in self._dead:
            return
        self._dead.add(pool)
        _derived.drop_pool(pool)
        if len(self._dead) > 1 or self._pool is not None:
            self._pool = threads

    def _finished(self, future: asyncio.Future[Derived | None], *, item: Item, pool: Executor) -> None:
        self._running.discard(future)
        if future.cancelled() or self._closed:
            return
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):
            self._queue.appendleft(item)
            self._replace(pool)
        elif exc is not None:
            self._results.append((item, Derived(None, None, "", f"checking {item.file_name} failed: {exc}")))
        else:
            derived = future.result()
            if derived is not None:
                self._results.append((item, derived))
        if len(self._results) >= RECORD_BATCH or self._clock() - self._last_record >= RECORD_EVERY_S:
            self._record()
        self._pump()

    def _record(self) -> None:
        self._last_record = self._clock()
        results, self._results = self._results, []
        made = [(item, d) for item, d in results if d.phash is not None or d.flags]
        if not results or self.error is not None:
            return
        try:
            self._store.record_quality(
                (d.thumb, d.phash, d.flags, i.job_id, i.idx, i.file_name, i.sha256) for i, d in made
            )
            for _, derived in results:
                if derived.error:
                    self._store.log_error(None, derived.error)
        except FluxBatchError as err:  # the state cannot be written: the run's own next write says so too
            self.error = err
            return
        self.done += len(made)
