"""The dispatcher of a run: jobs from the state store started as in-flight slots free up, within the
budget, until the work is done or the run is stopped.

It pulls runnable jobs (pending, every upstream job succeeded) from the store through
:mod:`flux_batch.runner.queue` and starts one task per job, up to ``max_in_flight``; there is no barrier
between stages: a downstream job becomes runnable the moment its upstream job's files are in place, and
goes ahead of the queue. Each task is :class:`~flux_batch.runner.job_flow.JobFlow`'s for one job, and
ends in an outcome the dispatcher acts on: a fatal error (401/402/403, a wrong base URL, the folder)
stops the run at once, an error another run may not meet leaves the job for the next run.

Ctrl-C once stops submitting and lets what is in flight finish, or cancels it with ``cancel_on_interrupt``
(creates still held by ``Prefer: wait`` included: their answer is given up, their prediction found by
listing, then canceled); twice stops at once. The tables are rewritten now and then as it goes
(:mod:`flux_batch.runner.checkpoints`), and so is the state's write-ahead log copied into its database, in a
worker thread, away from the event loop. No exception but flux-batch's own leaves a job's task: a job ends
in a recorded state, and a failure of the folder itself (a full disk, the state store) stops the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from flux_batch.errors import FluxBatchError, StateError, StorageError
from flux_batch.runner.checkpoints import CHECKPOINT_SPACING, Checkpoints
from flux_batch.runner.client import ApiClient
from flux_batch.runner.clock_offset import Window
from flux_batch.runner.context import Job, RunContext
from flux_batch.runner.fetch import Fetcher
from flux_batch.runner.image_work import ImageWork
from flux_batch.runner.in_flight import HoldTimes, Slots, in_flight_cap
from flux_batch.runner.inputs import InputResolver
from flux_batch.runner.job_flow import JobFlow, JobOutcome, Outcome
from flux_batch.runner.progress import OnEvent, Tracker, ignore
from flux_batch.runner.queue import RunQueue
from flux_batch.runner.ratelimit import Limiter
from flux_batch.runner.reconcile import find_created
from flux_batch.runner.settings import RunResult, RunSettings, RunStats
from flux_batch.runner.state.store import JobRow, Store

__all__ = [
    "CHECKPOINT_SPACING",
    "Executor",
    "RunResult",
    "RunSettings",
    "RunStats",
]

#: With cancel_on_interrupt, a create held by ``Prefer: wait`` is given up once it has been out this long
#: (so the request has surely arrived and its prediction will be listed), then found and canceled.
ABANDON_WAIT_AFTER_S = 2.0
#: The state's write-ahead log is copied into its database this often during a run, in a worker thread
#: (never by the event loop's own connection: :meth:`Store.log_checkpoints_elsewhere`), and at least its
#: last copy's duration after it. At 6,000 creates a minute half a second of commits is about 700 pages
#: of log (2.8 MB; a job writes about 14), below what SQLite's own automatic checkpoint let it reach.
LOG_CHECKPOINT_EVERY_S = 0.5


class Executor:
    """Runs the live jobs of a :class:`Store`. Create one per run; call :meth:`run` once."""

    def __init__(
        self,
        store: Store,
        client: ApiClient,
        settings: RunSettings,
        *,
        create_limiter: Limiter,
        other_limiter: Limiter,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_event: OnEvent = ignore,
        images: ImageWork | None = None,
        checkpoint: Callable[[], None] | None = None,  # called in a worker thread
    ) -> None:
        self._ctx = ctx = RunContext(
            store,
            client,
            settings,
            create_limiter=create_limiter,
            other_limiter=other_limiter,
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            rng=rng or random.Random(),
            on_event=on_event,
        )
        self._store = store
        self._client = client
        self.settings = settings
        self.resolver = InputResolver(
            store, client, settings.out_dir, settings.base_dir, call=ctx.other, wall_clock=wall_clock
        )
        self._given_up: set[str] = set()
        self._jobs: dict[str, Job] = {}
        self._queue = RunQueue(store, lambda job_id: job_id in ctx.tasks or job_id in self._given_up)
        self._flow = JobFlow(ctx, Fetcher(ctx, images), self.resolver, self._queue.release)
        self.checkpoints = Checkpoints(
            checkpoint,
            every_s=settings.checkpoint_every_s,
            clock=clock,
            stop=ctx.stop_everything,
            notice=ctx.notice,
        )
        self._abandoning: asyncio.Task[None] | None = None
        self._interrupts = 0
        self._budget_reached = False
        self._wake: asyncio.Event | None = None
        self._slots: Slots | None = None
        self._holds = HoldTimes()
        self._log: Checkpoints | None = None  # the state's log, copied into its database (run)

    @property
    def stats(self) -> RunStats:
        return self._ctx.stats

    @property
    def tracker(self) -> Tracker:
        return self._ctx.tracker

    # -- the run ----------------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        ctx = self._ctx
        self._wake = asyncio.Event()
        self._slots = Slots(self._in_flight_cap, sleep=ctx.sleep)
        with self._store.log_checkpoints_elsewhere() as checkpoint_log:
            self._log = Checkpoints(
                checkpoint_log,
                every_s=LOG_CHECKPOINT_EVERY_S,
                spacing=1.0,
                what="copy the state's log into its database",
                clock=ctx.clock,
                stop=ctx.stop_everything,
                notice=ctx.notice,
            )
            try:
                await self._run_jobs()
            finally:
                await self._log.wait()  # never on a connection being closed
                self._log = None
        if self._abandoning is not None:
            self._abandoning.cancel()
        ctx.stats.unfinished = len(self._given_up)
        await self.checkpoints.wait()  # the caller writes the final tables; never two writers at once
        return RunResult(
            interrupted=self._interrupts > 0,
            fatal=ctx.fatal,
            budget_reached=self._budget_reached,
            stats=ctx.stats,
            api_calls=dict(self._client.calls),
        )

    async def _run_jobs(self) -> None:
        """Resume the jobs in progress, then start the others as slots free up; return once all ended."""
        ctx = self._ctx
        try:
            for row in self._store.in_progress():
                if not await self._admit(row):
                    break
            await self._dispatch()
        except (StateError, StorageError) as err:  # the store failed under the dispatcher itself
            ctx.stop_everything(err)
        while ctx.tasks:
            await asyncio.wait(list(ctx.tasks.values()))

    def _in_flight_cap(self) -> int:
        """How many jobs may be in flight now (see :mod:`flux_batch.runner.in_flight`)."""
        ctx = self._ctx
        now = ctx.wall()
        oldest = next(iter(ctx.sent.values()), now)
        return in_flight_cap(
            rate=ctx.create_limiter.rate,
            hold_s=max(self._holds.mean_s, now - oldest),
            ceiling=self.settings.max_in_flight,
            burst=ctx.create_limiter.burst,
        )

    def _stopping(self) -> bool:
        return self._ctx.stop_submitting or self._budget_reached

    async def _dispatch(self) -> None:
        """Start jobs as slots free up: the slot first, then the job, so that a downstream job released by
        the job that just ended takes it (see RunQueue)."""
        assert self._wake is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            row = None
            while not self._stopping():
                row = self._queue.next()
                if row is not None or not self._ctx.tasks:
                    break
                self._wake.clear()
                await self._wake.wait()
            if row is None or self._stopping():
                self._slots.release()
                return
            if not self._start(row):
                return

    async def _admit(self, row: JobRow) -> bool:
        """Wait for an in-flight slot and start the job, unless the run is stopping or over budget."""
        assert self._slots is not None
        await self._slots.acquire()
        if self._stopping():
            self._slots.release()
            return False
        return self._start(row)

    def _start(self, row: JobRow) -> bool:
        """Start the job in the slot taken for it; False (and the slot given back) if over budget."""
        assert self._slots is not None
        ctx = self._ctx
        job = Job(row)
        if row.status == "downloading":
            job.cost = 0.0  # already paid for, and counted in the spend
        cap = self.settings.max_cost_usd
        if cap is not None and ctx.tracker.spent_usd + ctx.reserved + job.cost > cap + 1e-9:
            self._slots.release()
            # Stop taking new jobs; the admitted ones fit in the budget and go on.
            self._budget_reached = True
            ctx.notice(
                f"budget reached: ${ctx.tracker.spent_usd + ctx.reserved:.2f} spent or committed of the "
                f"${cap:.2f} cap; raise --max-cost (or max_cost_usd) and run again to continue"
            )
            return False
        ctx.reserved += job.cost
        self._jobs[row.id] = job
        task = asyncio.create_task(self._job(job))
        task.add_done_callback(lambda _: self._finished(job))
        ctx.tasks[row.id] = task
        return True

    def interrupt(self) -> None:
        """Ctrl-C: the first stops submitting (and cancels in-flight predictions with
        ``cancel_on_interrupt``); the second stops everything at once."""
        ctx = self._ctx
        self._interrupts += 1
        ctx.stop_submitting = True
        if self._wake is not None:
            self._wake.set()
        if self._interrupts == 1:
            ctx.cancel_requested = self.settings.cancel_on_interrupt
            for job_id, job in self._jobs.items():
                if job.status == "pending":  # waiting for a create slot: nothing sent yet
                    ctx.tasks[job_id].cancel()
            if ctx.cancel_requested:
                self._abandoning = asyncio.ensure_future(self._abandon_held_creates())
            waiting = [j for j in self._jobs.values() if j.status != "pending"]
            downloads = sum(1 for j in waiting if j.status == "downloading")
            verb = "canceling" if ctx.cancel_requested else "waiting for"
            ctx.notice(
                f"stopping: no new predictions; {verb} {len(waiting) - downloads} in flight and "
                f"{downloads} downloading (Ctrl-C again to stop now; the folder stays resumable)"
            )
        else:
            for task in ctx.tasks.values():
                task.cancel()
            if self._abandoning is not None:
                self._abandoning.cancel()

    async def _abandon_held_creates(self) -> None:
        """``cancel_on_interrupt``: a create held by ``Prefer: wait`` has no prediction id yet, and its
        answer may come only when the prediction is done (and paid). Give the answer up once the request
        has surely arrived; the job then finds its prediction by listing, as after any lost answer, and
        cancels it (see JobFlow._create). Not where predictions cannot be listed: one given up there could
        not be found again, and the next run might create it twice."""
        held = self._flow.held
        if held and not await self._can_list():
            self._ctx.notice(
                f"this API cannot list predictions, so the {len(held)} creates waiting for their "
                "answer are left to answer (then canceled if still running)"
            )
            return
        while held:
            now = self._ctx.wall()
            for request, intent in list(held.items()):
                if now - intent >= ABANDON_WAIT_AFTER_S:
                    request.cancel()
            await self._ctx.sleep(0.1)

    async def _can_list(self) -> bool:
        """Whether this API lists predictions (one list call over an empty window)."""
        ctx = self._ctx
        now = ctx.wall()
        try:
            found = await ctx.retrying(
                lambda: find_created(
                    ctx.client,
                    model="",
                    version=None,
                    sent_input={},
                    window=Window(now, now),
                    is_known=lambda _: True,
                    before_page=ctx.other_limiter.acquire,
                )
            )
        except FluxBatchError:
            return True  # it failed for another reason: a search will meet that, and leave the job open
        return found.listed

    # -- one job ----------------------------------------------------------------------------------------

    async def _job(self, job: Job) -> None:
        try:
            self._act_on(job, await self._flow.run(job))
        except FluxBatchError as err:  # recording the job's end failed: the store or the disk
            self._ctx.stop_everything(err)
        except Exception as exc:
            failed = StorageError(f"job {job.row.id}: its outcome could not be recorded ({exc})")
            self._ctx.stop_everything(failed)

    def _act_on(self, job: Job, outcome: JobOutcome) -> None:
        if outcome.outcome is Outcome.FATAL and outcome.error is not None:
            self._ctx.stop_everything(outcome.error)
        elif outcome.outcome is Outcome.LEFT:
            # The job hit an error that another run may not: it stays as recorded, for the next run.
            self._given_up.add(job.row.id)
            self._store.log_error(job.row.id, outcome.message)
            self._ctx.notice(
                f"job {job.row.id} ({job.row.job.stage}) left for the next run: {outcome.message}"
            )

    def _finished(self, job: Job) -> None:
        """Give back a job's slot and reservation. A done-callback of its task, not a ``finally``: a task
        cancelled before its first step (a 401 stops everything) never runs its coroutine at all."""
        assert self._slots is not None and self._wake is not None
        self._slots.release()
        sent = self._ctx.sent.pop(job.row.id, None)
        if sent is not None:
            self._holds.observe(self._ctx.wall() - sent)
        self._ctx.tasks.pop(job.row.id, None)
        self._jobs.pop(job.row.id, None)
        self._ctx.reserved -= job.cost
        self._queue.rescan()
        self._wake.set()
        self.checkpoints.maybe()
        if self._log is not None:
            self._log.maybe()
