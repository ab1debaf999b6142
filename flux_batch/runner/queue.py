"""Which job to start next: the dispatcher's queue over the state store.

Pending jobs are read from the store in manifest order, in batches, never all at once. A downstream job
released by the success of its upstream job goes first, ahead of the rest of the batch: in a chain of
stages, an edit starts as soon as the image it edits is on disk, instead of after every generation has
been submitted (a barrier between stages).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from flux_batch.runner.state.store import JobRow, Store

BATCH = 256


class RunQueue:
    """``next()`` gives a runnable job, or None when there is none now. ``skip(job_id)`` says whether a job
    is already running or was left for the next run (the store cannot know that)."""

    def __init__(self, store: Store, skip: Callable[[str], bool], *, batch: int = BATCH) -> None:
        self._store = store
        self._skip = skip
        self._batch_size = batch
        self._batch: OrderedDict[str, JobRow] = OrderedDict()
        self._released: deque[str] = deque()
        self._cursor = 0
        self._rescan = False

    def release(self, job_ids: Iterable[str]) -> None:
        """Jobs that just became runnable (their upstream succeeded): they go first."""
        self._released.extend(job_ids)

    def rescan(self) -> None:
        """Something changed (a job ended): once the batches run out, read from the start again."""
        self._rescan = True

    def next(self) -> JobRow | None:
        while self._released:
            job_id = self._released.popleft()
            self._batch.pop(job_id, None)  # its batch row is stale now: never start it twice
            if not self._skip(job_id):
                row = self._store.runnable_job(job_id)
                if row is not None:
                    return row
        while True:
            while self._batch:
                job_id, _ = self._batch.popitem(last=False)
                # Read again: a job read into the batch while it was started but not yet submitted (waiting
                # for the create limiter, still pending in the store) may have succeeded since, and its
                # batch row would create it a second time.
                if not self._skip(job_id) and (row := self._store.runnable_job(job_id)) is not None:
                    return row
            rows = self._store.runnable(self._batch_size, after_seq=self._cursor)
            if rows:
                self._cursor = rows[-1].seq
                self._batch.update((r.id, r) for r in rows)
                continue
            if not self._rescan:
                return None
            self._rescan, self._cursor = False, 0

    def __repr__(self) -> str:
        return (
            f"RunQueue(batch={len(self._batch)}, released={len(self._released)}, cursor={self._cursor}, "
            f"rescan={self._rescan})"
        )
