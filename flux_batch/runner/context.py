"""What the pieces of a run share: the store, the API client and its two limiters, the clocks, the
settings, the figures (stats, the progress tracker), the stop flags, and how a job's move is told.

One object, handed to the dispatcher (:mod:`~flux_batch.runner.executor`), the job flow
(:mod:`~flux_batch.runner.job_flow`) and the fetcher (:mod:`~flux_batch.runner.fetch`), so that each of
them is one job and none reaches into another.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from flux_batch.errors import FluxBatchError, RateLimitedError
from flux_batch.runner.client import ApiClient
from flux_batch.runner.clock_offset import OffsetRange
from flux_batch.runner.progress import Event, OnEvent, Tracker
from flux_batch.runner.ratelimit import Limiter
from flux_batch.runner.retry import retry_call
from flux_batch.runner.settings import RunSettings, RunStats
from flux_batch.runner.state.store import JobRow, Store

T = TypeVar("T")


class Job:
    """A job being driven, with its current status (for the tracker) and its cost still reserved."""

    __slots__ = ("cost", "intent_at", "row", "status")

    def __init__(self, row: JobRow) -> None:
        self.row = row
        self.status = row.status
        self.cost = row.cost_usd or 0.0
        self.intent_at: float | None = None


class RunContext:
    """The shared collaborators and state of one run (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        client: ApiClient,
        settings: RunSettings,
        *,
        create_limiter: Limiter,
        other_limiter: Limiter,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        on_event: OnEvent,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.create_limiter = create_limiter
        # Creates between their intent and their token (see JobFlow._create): a bounded room, so that a
        # kill leaves a few seconds of creates' intents unsent, not every job in flight.
        room = create_limiter.waiting_room()  # None: no limit, a token never waits
        self.token_room: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(room) if room else contextlib.nullcontext()
        )
        self.other_limiter = other_limiter
        self.clock = clock
        self.wall = wall_clock
        self.sleep = sleep
        self.rng = rng
        self.on_event = on_event
        self.stats = RunStats()
        self.tracker = Tracker(store.counts(), clock=clock, spent_usd=store.spent_usd())
        self.offsets = OffsetRange()  # the API's clock minus ours, bracketed by this run's answered creates
        self.started = wall_clock()  # an earlier run on this folder had ended by now (we hold its lock)
        self.tasks: dict[str, asyncio.Task[None]] = {}  # one per job in flight
        self.sent: dict[str, float] = {}  # job id -> when this run sent its create, oldest first
        self.reserved = 0.0  # the cost of the jobs in flight, not yet spent
        self.stop_submitting = False
        self.cancel_requested = False
        self.fatal: FluxBatchError | None = None

    # -- telling ---------------------------------------------------------------------------------------

    def set(self, job: Job, status: str, message: str = "") -> None:
        """The job moved to ``status`` (already recorded by the caller): count it and tell."""
        self.tracker.move(job.row.job.stage, job.status, status)
        job.status = status
        self.on_event(Event("job", job.row.job.stage, job.row.id, status, message), self.tracker)

    def fail(self, job: Job, status: str, error: str) -> None:
        """Record and tell the job's end in ``status``; the jobs that needed it are skipped."""
        skipped = self.store.mark_failed(job.row.id, status, error)
        self.set(job, status, message=error)
        for stage, n in skipped.items():
            self.tracker.move(stage, "pending", "skipped", n)

    def notice(self, message: str) -> None:
        self.on_event(Event("notice", message=message), self.tracker)

    def stop_everything(self, err: FluxBatchError) -> None:
        """An error no job can get past (the account, the endpoint, the folder): stop the run now."""
        if self.fatal is None:
            self.fatal = err
            self.notice(f"stopping: {err}")
        self.stop_submitting = True
        for task in self.tasks.values():
            task.cancel()

    # -- calling the API ---------------------------------------------------------------------------------

    async def other(self, call: Callable[[], Awaitable[T]]) -> T:
        """A non-create API call: paced by the other limiter, retried on transient failures."""

        async def once() -> T:
            await self.other_limiter.acquire()
            return await call()

        return await self.retrying(once)

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_call(call, sleep=self.sleep, rng=self.rng, on_retry=self.on_retry)

    def on_retry(self, err: FluxBatchError, delay: float) -> None:
        self.stats.retries += 1
        if isinstance(err, RateLimitedError):
            self.throttled(self.other_limiter, err)

    def throttled(
        self,
        limiter: Limiter,
        err: RateLimitedError,
        *,
        stated_limit: bool = False,
        sent_at: float | None = None,
    ) -> bool:
        """A 429, counted once here whichever request got it, and told to ``limiter``; True when the
        limit the API stated became the rate (``stated_limit``: creates, whose 429 may state one).
        ``sent_at``: when the request took its token (what ``limiter.acquire`` returned), if known."""
        self.stats.throttled_429 += 1
        self.tracker.throttled += 1
        return limiter.throttled(err.retry_after, err.limit_rpm if stated_limit else None, sent_at=sent_at)
