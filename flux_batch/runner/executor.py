"""The async orchestration of a run: jobs from the state store to images on disk.

A dispatcher pulls runnable jobs (pending, every upstream job succeeded) from the store in batches and
starts one task per job, up to ``max_in_flight``; there is no barrier between stages: a downstream job
becomes runnable the moment its upstream job's files are in place, and goes ahead of the queue
(:mod:`flux_batch.runner.queue`). Each task drives one job through the write-ahead steps of
:mod:`flux_batch.runner.state`:

    create (Prefer: wait, Cancel-After) -> [poll with backoff until done] -> download -> succeeded

Create calls go through the create limiter, everything else through the other limiter. A 429 on create
slows the whole create stream; a timeout, dropped connection or 5xx on create is *ambiguous* and is
resolved by :mod:`flux_batch.runner.reconcile` before anything is created again; a create that was
answered is never ambiguous: its id is kept, or, without a usable one, the job fails. 401/402/403 stop the
run at once; 422 fails the one job; a few identical 404s on create before any create worked stop it too
(the base URL is wrong). Ctrl-C once stops submitting and lets what is in flight finish, or cancels it with
``cancel_on_interrupt`` (creates still held by ``Prefer: wait`` included: their answer is given up, their
prediction found by listing, then canceled); twice stops at once. The state stays resumable throughout.

A failed download is retried; if it still fails, the API is asked whether the output is gone (it
removed the data, or the prediction is past its retention): only then is the prediction created again, at
most ``max_redo`` times a run, counted in ``RunStats.recreated``. Otherwise the job ends
``download_failed`` with its prediction kept, for the next run to download. No exception but flux-batch's
own leaves a job's task: a job ends in a recorded state, and a failure of the folder itself (a full disk,
the state store) stops the run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flux_batch import defaults
from flux_batch.errors import (
    AuthError,
    BillingError,
    DiskFullError,
    DownloadError,
    EndpointError,
    FluxBatchError,
    InvalidInputError,
    NotFoundError,
    OutputGoneError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    StateError,
    StorageError,
    TransportError,
    UnknownStatusError,
)
from flux_batch.job_status import JobStatus
from flux_batch.layout import image_dir
from flux_batch.pricing import Price
from flux_batch.runner.client import ApiClient, Prediction
from flux_batch.runner.clock_offset import OffsetRange, Window, landed_by
from flux_batch.runner.download import DEFAULT_MAX_BYTES, download
from flux_batch.runner.in_flight import HoldTimes, Slots, in_flight_cap
from flux_batch.runner.inputs import InputResolver
from flux_batch.runner.limiter import Limiter
from flux_batch.runner.progress import Event, OnEvent, Tracker, ignore
from flux_batch.runner.queue import RunQueue
from flux_batch.runner.reconcile import Found, epoch_of, find_created, should_create_again
from flux_batch.runner.retry import POLL_BACKOFF, REQUEST_BACKOFF, retry_call
from flux_batch.runner.state import JobRow, Store
from flux_batch.safepath import inside

T = TypeVar("T")
#: Checkpoints are at least this many times their own duration apart (and checkpoint_every_s).
CHECKPOINT_SPACING = 50
#: With cancel_on_interrupt, a create held by ``Prefer: wait`` is given up once it has been out this long
#: (so the request has surely arrived and its prediction will be listed), then found and canceled.
ABANDON_WAIT_AFTER_S = 2.0
Thumbnailer = Callable[[Path, str], str]


@dataclass(frozen=True)
class RunSettings:
    """How to run. ``base_dir`` resolves local image paths named by the manifest."""

    out_dir: Path
    base_dir: Path = Path(".")
    max_in_flight: int = defaults.MAX_IN_FLIGHT  # the ceiling of the in-flight cap
    wait: int = defaults.WAIT_S
    deadline_s: float = defaults.DEADLINE_S
    deadline_grace_s: float = 30.0
    ambiguous_create: str = "create"
    max_cost_usd: float | None = None
    cancel_on_interrupt: bool = False
    retention_s: float = 3600.0
    freshness_margin_s: float = 300.0
    max_download_bytes: int = DEFAULT_MAX_BYTES
    download_deadline_s: float | None = None  # None: download.DEFAULT_DEADLINE_S
    max_create_tries: int = 8
    max_redo: int = 1  # times a run creates a job again because the API says its output is gone
    identical_404s: int = 3  # identical 404s on create, before any create worked, that stop the run
    checkpoint_every_s: float = 5.0
    #: Each model's price (owner/name -> Price): a job priced by megapixel is charged what the API billed.
    prices: Mapping[str, Price] = field(default_factory=dict)


@dataclass
class RunStats:
    throttled_429: int = 0
    retries: int = 0
    ambiguous_creates: int = 0
    reattached: int = 0
    possible_duplicates: int = 0
    unfinished: int = 0
    recreated: int = 0  # predictions created again because the API said the output was gone


@dataclass(frozen=True)
class RunResult:
    """How the run ended. ``fatal`` is the auth or billing error that stopped it, if any."""

    interrupted: bool
    fatal: FluxBatchError | None
    budget_reached: bool
    stats: RunStats
    api_calls: dict[str, int] = field(default_factory=dict)


class _Stopped(Exception):
    """The run is stopping: leave this job as it is (resumable)."""


class _Ended(Exception):
    """The job reached a final status (recorded); nothing more to do."""


class _Job:
    """A job being driven, with its current status (for the tracker)."""

    __slots__ = ("cost", "intent_at", "row", "status")

    def __init__(self, row: JobRow) -> None:
        self.row = row
        self.status = row.status
        self.cost = row.cost_usd or 0.0
        self.intent_at: float | None = None


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
        thumbnail: Thumbnailer | None = None,
        checkpoint: Callable[[], None] | None = None,  # called in a worker thread
    ) -> None:
        self._store = store
        self._client = client
        self.settings = settings
        self._create_limiter = create_limiter
        self._other_limiter = other_limiter
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_event = on_event
        self._thumbnail = thumbnail
        self._checkpoint = checkpoint
        self._last_checkpoint = clock()
        self._checkpoint_every = settings.checkpoint_every_s
        self._checkpointing: asyncio.Future[None] | None = None
        self.stats = RunStats()
        self._offsets = OffsetRange()  # the API's clock minus ours, bracketed by this run's answered creates
        self._started = wall_clock()  # an earlier run on this folder had ended by now (we hold its lock)
        self._posting = 0  # creates sent and not answered yet
        self._post_ended = asyncio.Event()  # set (and replaced) each time one of them ends
        self.tracker = Tracker(store.counts(), clock=clock, spent_usd=store.spent_usd())
        self.resolver = InputResolver(
            store, client, settings.out_dir, settings.base_dir, call=self._other, wall_clock=wall_clock
        )
        self._jobs: dict[str, _Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._given_up: set[str] = set()
        self._queue = RunQueue(store, lambda job_id: job_id in self._tasks or job_id in self._given_up)
        self._held: dict[asyncio.Future[Prediction], float] = {}  # creates awaiting their answer: intent
        self._abandoning: asyncio.Task[None] | None = None
        self._created_any = False  # a create was answered with a prediction in this run
        self._404s: list[tuple[str, str]] = []  # (job, stage) whose create got the same 404 in a row
        self._last_404 = ""
        self._reserved = 0.0
        self._stop_submitting = False
        self._cancel_requested = False
        self._interrupts = 0
        self._fatal: FluxBatchError | None = None
        self._budget_reached = False
        self._wake: asyncio.Event | None = None
        self._slots: Slots | None = None
        self._holds = HoldTimes()
        self._sent: dict[str, float] = {}  # job id -> when this run sent its create, oldest first

    # -- the run ----------------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        self._wake = asyncio.Event()
        self._slots = Slots(self._in_flight_cap, sleep=self._sleep)
        try:
            for row in self._store.in_progress():
                if not await self._admit(row):
                    break
            await self._dispatch()
        except (StateError, StorageError) as err:  # the store failed under the dispatcher itself
            self._stop_everything(err)
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))
        if self._abandoning is not None:
            self._abandoning.cancel()
        self.stats.unfinished = len(self._given_up)
        if self._checkpointing is not None:
            await self._checkpointing  # the caller writes the final tables; never two writers at once
        return RunResult(
            interrupted=self._interrupts > 0,
            fatal=self._fatal,
            budget_reached=self._budget_reached,
            stats=self.stats,
            api_calls=dict(self._client.calls),
        )

    def _in_flight_cap(self) -> int:
        """How many jobs may be in flight now (see :mod:`flux_batch.runner.in_flight`)."""
        now = self._wall()
        oldest = next(iter(self._sent.values()), now)
        return in_flight_cap(
            rate=self._create_limiter.rate,
            hold_s=max(self._holds.mean_s, now - oldest),
            ceiling=self.settings.max_in_flight,
            burst=self._create_limiter.burst,
        )

    def _stopping(self) -> bool:
        return self._stop_submitting or self._budget_reached

    async def _dispatch(self) -> None:
        """Start jobs as slots free up: the slot first, then the job, so that a downstream job released by
        the job that just ended takes it (see RunQueue)."""
        assert self._wake is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            row = None
            while not self._stopping():
                row = self._queue.next()
                if row is not None or not self._tasks:
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
        job = _Job(row)
        if row.status == "downloading":
            job.cost = 0.0  # already paid for, and counted in the spend
        cap = self.settings.max_cost_usd
        if cap is not None and self.tracker.spent_usd + self._reserved + job.cost > cap + 1e-9:
            self._slots.release()
            # Stop taking new jobs; the admitted ones fit in the budget and go on.
            self._budget_reached = True
            self._notice(
                f"budget reached: ${self.tracker.spent_usd + self._reserved:.2f} spent or committed of the "
                f"${cap:.2f} cap; raise --max-cost (or max_cost_usd) and run again to continue"
            )
            return False
        self._reserved += job.cost
        self._jobs[row.id] = job
        task = asyncio.create_task(self._job(job))
        task.add_done_callback(lambda _: self._finished(job))
        self._tasks[row.id] = task
        return True

    def interrupt(self) -> None:
        """Ctrl-C: the first stops submitting (and cancels in-flight predictions with
        ``cancel_on_interrupt``); the second stops everything at once."""
        self._interrupts += 1
        self._stop_submitting = True
        if self._wake is not None:
            self._wake.set()
        if self._interrupts == 1:
            self._cancel_requested = self.settings.cancel_on_interrupt
            for job_id, job in self._jobs.items():
                if job.status == "pending":  # waiting for a create slot: nothing sent yet
                    self._tasks[job_id].cancel()
            if self._cancel_requested:
                self._abandoning = asyncio.ensure_future(self._abandon_held_creates())
            waiting = [j for j in self._jobs.values() if j.status != "pending"]
            downloads = sum(1 for j in waiting if j.status == "downloading")
            verb = "canceling" if self._cancel_requested else "waiting for"
            self._notice(
                f"stopping: no new predictions; {verb} {len(waiting) - downloads} in flight and "
                f"{downloads} downloading (Ctrl-C again to stop now; the folder stays resumable)"
            )
        else:
            for task in self._tasks.values():
                task.cancel()
            if self._abandoning is not None:
                self._abandoning.cancel()

    async def _abandon_held_creates(self) -> None:
        """``cancel_on_interrupt``: a create held by ``Prefer: wait`` has no prediction id yet, and its
        answer may come only when the prediction is done (and paid). Give the answer up once the request
        has surely arrived; the job then finds its prediction by listing, as after any lost answer, and
        cancels it (see _create). Not where predictions cannot be listed: one given up there could not
        be found again, and the next run might create it twice."""
        if self._held and not await self._can_list():
            self._notice(
                f"this API cannot list predictions, so the {len(self._held)} creates waiting for their "
                "answer are left to answer (then canceled if still running)"
            )
            return
        while self._held:
            now = self._wall()
            for request, intent in list(self._held.items()):
                if now - intent >= ABANDON_WAIT_AFTER_S:
                    request.cancel()
            await self._sleep(0.1)

    async def _can_list(self) -> bool:
        """Whether this API lists predictions (one list call over an empty window)."""
        now = self._wall()
        try:
            found = await self._retrying(
                lambda: find_created(
                    self._client,
                    model="",
                    version=None,
                    sent_input={},
                    window=Window(now, now),
                    is_known=lambda _: True,
                    before_page=self._other_limiter.acquire,
                )
            )
        except FluxBatchError:
            return True  # it failed for another reason: a search will meet that, and leave the job open
        return found.listed

    # -- one job ----------------------------------------------------------------------------------------

    async def _job(self, job: _Job) -> None:
        assert self._slots is not None and self._wake is not None
        try:
            try:
                await self._drive(job)
            except (AuthError, BillingError, EndpointError, StateError, StorageError) as err:
                self._stop_everything(err)
            except (_Stopped, _Ended, asyncio.CancelledError):
                pass
            except (UnknownStatusError, InvalidInputError) as err:
                self._fail(job, "failed", str(err))
            except FluxBatchError as err:
                self._leave(job, str(err))
            except Exception as exc:  # a defect, or a library's error: the job stays as recorded
                self._leave(job, f"unexpected error ({type(exc).__name__}: {exc})")
        except FluxBatchError as err:  # recording the job's end failed: the store or the disk
            self._stop_everything(err)
        except Exception as exc:
            failed = StorageError(f"job {job.row.id}: its outcome could not be recorded ({exc})")
            self._stop_everything(failed)

    def _leave(self, job: _Job, error: str) -> None:
        """The job hit an error that another run may not: it stays as recorded, for the next run."""
        self._given_up.add(job.row.id)
        self._store.log_error(job.row.id, error)
        self._notice(f"job {job.row.id} ({job.row.job.stage}) left for the next run: {error}")

    def _finished(self, job: _Job) -> None:
        """Give back a job's slot and reservation. A done-callback of its task, not a ``finally``: a task
        cancelled before its first step (a 401 stops everything) never runs its coroutine at all."""
        assert self._slots is not None and self._wake is not None
        self._slots.release()
        sent = self._sent.pop(job.row.id, None)
        if sent is not None:
            self._holds.observe(self._wall() - sent)
        self._tasks.pop(job.row.id, None)
        self._jobs.pop(job.row.id, None)
        self._reserved -= job.cost
        self._queue.rescan()
        self._wake.set()
        self._maybe_checkpoint()

    async def _drive(self, job: _Job) -> None:
        row = job.row
        # A job that already had a paid prediction (its output was lost in an earlier run) is being created
        # again: that counts against this run's one re-creation.
        redo = 0
        if job.status == "pending" and row.attempts and self._store.paid_before(row.id):
            redo = 1
            self.stats.recreated += 1
        while True:
            prediction: Prediction | None = None
            if job.status == "pending":
                prediction = await self._create(job)
            elif job.status == "submitting":
                prediction = await self._resume_submitting(job)
            elif job.status in ("submitted", "running"):
                job.intent_at = self._last_intent(row.id)
                prediction = await self._other(partial(self._client.get, str(row.prediction_id)))
            if prediction is not None:
                prediction = await self._until_done(job, prediction)
                self._record_end(job, prediction)
            try:
                await self._download_all(job)
            except OutputGoneError as gone:
                if redo >= self.settings.max_redo:
                    self._fail(job, "expired", f"{gone}; created again {redo} time(s) in this run already")
                    return
                redo += 1
                self.stats.recreated += 1
                self._store.reset_pending(row.id, f"{gone}; creating the prediction again")
                self._set(job, "pending")
                continue
            except DownloadError as err:
                self._fail(
                    job,
                    JobStatus.DOWNLOAD_FAILED,
                    f"{err} (the prediction is kept: run again to download it)",
                )
                return
            released = self._store.mark_succeeded(row.id)
            self._set(job, JobStatus.SUCCEEDED)
            self._queue.release(released)
            return

    def _last_intent(self, job_id: str) -> float | None:
        attempts = self._store.attempts(job_id)
        return attempts[-1].intent_at if attempts else None

    async def _create(self, job: _Job) -> Prediction:
        row = job.row
        tries = 0
        while True:
            if self._stop_submitting:
                raise _Stopped
            sent = await self.resolver.resolve(row.send_input())
            # A downstream job goes ahead of the queued upstream ones: stages overlap, chains finish early.
            await self._create_limiter.acquire(first=bool(row.job.needs))
            if self._stop_submitting:
                raise _Stopped
            intent = job.intent_at = self._wall()
            self._sent.pop(row.id, None)  # a create sent again goes to the end
            self._sent[row.id] = intent
            self._store.begin_attempt(row.id, sent, intent)
            self._set(job, "submitting")
            try:
                prediction = await self._post(row, sent, intent)
            except RateLimitedError as err:
                self._store.abandon_attempt(row.id, "throttled")
                self._throttled(err)
                continue
            except (InvalidInputError, NotFoundError) as err:
                self._store.abandon_attempt(row.id, "rejected")
                self._fail(job, "failed", err.detail)
                if isinstance(err, NotFoundError):
                    self._count_404(job, err)
                raise _Ended from err
            except ProtocolError as err:
                # Answered, but not with a usable prediction (no JSON, no id, ...): never ambiguous, never
                # repeated. A prediction may exist that flux-batch cannot know; the job fails, saying so.
                self._store.abandon_attempt(row.id, "no prediction id")
                self._fail(job, "failed", f"protocol error: {err}; not created again (--retry-failed would)")
                raise _Ended from err
            except (TransportError, ServerError) as err:
                if isinstance(err, TransportError) and not err.sent:
                    self._store.abandon_attempt(row.id, "not sent")
                else:
                    found = await self._ambiguous(job, sent, intent, err)
                    if found is not None:
                        return found
                if self._stop_submitting:
                    raise _Stopped from err
                tries += 1
                await self._backoff(tries, err)
                continue
            self._created_any = True
            self._attach(job, prediction)
            return prediction

    async def _post(self, row: JobRow, sent: dict[str, Any], intent: float) -> Prediction:
        """The create request; its answer measures the clock offset (see clock_offset)."""
        self._posting += 1
        try:
            call = self._client.create(
                row.job.model,
                row.job.version,
                sent,
                wait=self.settings.wait,
                cancel_after_s=self.settings.deadline_s,
            )
            prediction = await (
                self._abandonable(call, intent) if self.settings.cancel_on_interrupt else call
            )
            created = epoch_of(prediction.created_at)
            if created is not None:
                answered = self._wall()
                completed = epoch_of(prediction.completed_at)
                self._offsets = self._offsets.observe(intent, answered, created, completed)
            return prediction
        finally:
            self._posting -= 1
            self._post_ended.set()
            self._post_ended = asyncio.Event()

    async def _abandonable(self, call: Awaitable[Prediction], intent: float) -> Prediction:
        """``call`` in a future of its own that an interrupt may give up (see _abandon_held_creates): that
        is a lost answer, a TransportError like a dropped connection."""
        request = asyncio.ensure_future(call)
        self._held[request] = intent
        try:
            try:
                await asyncio.wait({request})
            except asyncio.CancelledError:  # this job's task was cancelled: so is its request
                request.cancel()
                raise
            if request.cancelled():
                raise TransportError("the create's answer was given up on Ctrl-C", sent=True)
            return request.result()
        finally:
            del self._held[request]

    def _count_404(self, job: _Job, err: NotFoundError) -> None:
        """A 404 on create. The same one a few times in a row before any create worked means the base URL
        is not the API's (the official clients' base has no ``/v1``): stop the run with a hint, and put
        those jobs back (and any that get the same answer after), as nothing was created for them."""
        if self._created_any:
            return
        if err.detail != self._last_404:
            self._last_404, self._404s = err.detail, []
        self._404s.append((job.row.id, job.row.job.stage))
        if len(self._404s) < self.settings.identical_404s and not isinstance(self._fatal, EndpointError):
            return
        for job_id, stage in self._404s:
            self._store.reset_pending(job_id, None)
            self.tracker.move(stage, "failed", "pending")
        count, self._404s = len(self._404s), []
        if self._fatal is not None:
            return
        base = self._client.base_url
        if urlsplit(base).path.rstrip("/").endswith("/v1"):
            hint = "check the base URL (and that the models exist for this account)"
        else:
            hint = f"did you mean {base}/v1?"
        self._stop_everything(
            EndpointError(
                f"{count} creates in a row got the same 404 ({err.detail}) from {base}: it does not look "
                f"like the predictions API; {hint}",
                status=404,
                detail=err.detail,
            )
        )

    async def _backoff(self, tries: int, err: FluxBatchError) -> None:
        if tries >= self.settings.max_create_tries:
            raise err
        self.stats.retries += 1
        await self._sleep(REQUEST_BACKOFF(tries, self._rng))

    def _throttled(self, err: RateLimitedError) -> None:
        self.stats.throttled_429 += 1
        self.tracker.throttled += 1
        if self._create_limiter.throttled(err.retry_after, err.limit_rpm):
            self._notice(
                f"the API cut creates to {err.limit_rpm:g} a minute ({err.detail}); going on at that rate:"
                " stop, fix the account and run again to go faster"
            )
        self._on_event(Event("throttled", message=str(err)), self.tracker)

    def _attach(self, job: _Job, prediction: Prediction) -> None:
        self._store.attach(job.row.id, prediction.id, prediction.status, prediction.created_at)
        self._set(job, "running" if prediction.status == "processing" else "submitted")

    async def _ambiguous(
        self, job: _Job, sent: dict[str, Any], intent: float, err: FluxBatchError
    ) -> Prediction | None:
        """The create may or may not have made a prediction: find it, or decide whether to create again."""
        self.stats.ambiguous_creates += 1
        sent_by = self._wall()  # the request left by now: an answer or a timeout came back
        # Early in a run nothing has answered yet: wait for a create in flight to measure the offset
        # rather than search blind (a clock more than the allowance off would be missed).
        while not self._offsets.samples and self._posting:
            await self._post_ended.wait()
        window = self._offsets.window(intent, sent_by)
        found = await self._find(job, sent, window, landed_by(intent, sent_by))
        if found is not None:
            return found
        self._store.abandon_attempt(job.row.id, "not created")
        return None

    async def _find(
        self, job: _Job, sent: dict[str, Any], window: Window, landed: float
    ) -> Prediction | None:
        """Find the prediction a create may have made, or decide whether to create again. ``landed`` (our
        clock) is the latest moment the create can still be made: a search before then that finds it is
        done, one that finds nothing proves nothing, and is made again once that moment has passed."""
        row = job.row
        found = await self._search(job, sent, window)
        wait = landed - self._wall()
        if found.prediction is None and found.listed and wait > 0:
            await self._sleep(wait)
            found = await self._search(job, sent, window)
        if found.prediction is not None:
            self.stats.reattached += 1
            self._attach(job, found.prediction)
            return found.prediction
        if not found.listed and self._stop_submitting:
            raise _Stopped  # not known, and not created again now: the next run settles it by the policy
        if should_create_again(found, self.settings.ambiguous_create):
            if not found.listed:
                self.stats.possible_duplicates += 1
                self._store.log_error(row.id, "possible duplicate: a create's outcome was unknown and "
                                      "this API cannot list predictions; created again")  # fmt: skip
            return None
        self._fail(
            job,
            "failed",
            "a create's outcome is unknown and this API cannot list predictions to check, so it was not "
            "repeated (api.ambiguous_create: fail); check the provider's dashboard, then run with "
            "--retry-failed",
        )
        raise _Ended

    async def _search(self, job: _Job, sent: dict[str, Any], window: Window) -> Found:
        row = job.row
        # Each page of the search waits for the other-requests limiter; the search as a whole is retried.
        return await self._retrying(
            lambda: find_created(
                self._client,
                model=row.job.model,
                version=row.job.version,
                sent_input=sent,
                window=window,
                is_known=self._store.known_prediction,
                before_page=self._other_limiter.acquire,
            )
        )

    async def _resume_submitting(self, job: _Job) -> Prediction:
        """An earlier run recorded the intent to create but no prediction id: find it or create again."""
        attempts = self._store.attempts(job.row.id)
        if attempts and attempts[-1].outcome is None:
            last = attempts[-1]
            intent = job.intent_at = last.intent_at
            # Sent by an earlier run, maybe under another clock setting: the blind allowance, not this run's
            # measurements (see clock_offset). That run had ended when this one started, but its request
            # may still be on its way.
            window = OffsetRange().window(intent, self._started)
            found = await self._find(
                job, json.loads(last.sent_input), window, landed_by(intent, self._started)
            )
            if found is not None:
                return found
            self._store.abandon_attempt(job.row.id, "not created")
        self._set(job, "pending")
        return await self._create(job)

    async def _until_done(self, job: _Job, prediction: Prediction) -> Prediction:
        """Poll (with backoff) until the prediction ends or its deadline passes (then cancel it)."""
        start = job.intent_at if job.intent_at is not None else self._wall()
        deadline = start + self.settings.deadline_s + self.settings.deadline_grace_s
        polls = 0
        while not prediction.done:
            if prediction.status == "processing" and job.status == "submitted":
                self._store.mark_running(job.row.id)
                self._set(job, "running")
            if self._cancel_requested or self._wall() >= deadline:
                prediction = await self._cancel(job, prediction, deadline_passed=not self._cancel_requested)
                if prediction.done:
                    break
            polls += 1
            await self._sleep(max(0.0, min(POLL_BACKOFF(polls, self._rng), deadline - self._wall() + 0.01)))
            prediction = await self._other(partial(self._client.get, prediction.id))
        return prediction

    async def _cancel(self, job: _Job, prediction: Prediction, *, deadline_passed: bool) -> Prediction:
        with contextlib.suppress(NotFoundError, ProtocolError, ServerError, TransportError):
            prediction = await self._other(partial(self._client.cancel, prediction.id))
        if not deadline_passed and prediction.status in ("canceled", "aborted"):
            self._store.record_terminal(
                job.row.id, status="canceled", error=None, urls=(), url_until=0.0, completed_at=None,
                predict_time=None,
            )  # fmt: skip
            self._store.reset_pending(job.row.id, "canceled on interrupt; will run again")
            self._set(job, "pending")
            raise _Stopped
        if deadline_passed and not prediction.done:
            self._fail(job, "canceled", f"no result within the {self.settings.deadline_s:.0f} s deadline")
            raise _Ended
        return prediction

    def _billed(self, row: JobRow, prediction: Prediction, outputs: int) -> float | None:
        """The job's cost from the megapixels the API billed, for a model priced by megapixel (None: keep
        the estimate, e.g. a prediction without those metrics)."""
        price = self.settings.prices.get(row.job.model)
        if price is None or not price.by_size or prediction.output_mp is None:
            return None
        return round(
            price.billed(
                row.send_input(),
                images=outputs,
                input_mp=prediction.input_mp or 0.0,
                output_mp=prediction.output_mp,
            ),
            6,
        )

    def _record_end(self, job: _Job, prediction: Prediction) -> None:
        row = job.row
        if prediction.status == "succeeded":
            urls = prediction.output_urls()
            billed = self._billed(row, prediction, len(urls))
            self._store.record_terminal(
                row.id,
                status="succeeded",
                error=None,
                urls=urls,
                url_until=self._wall() + self.settings.retention_s - self.settings.freshness_margin_s,
                completed_at=prediction.completed_at,
                predict_time=prediction.predict_time,
                cost_usd=billed,
            )
            self.tracker.spent_usd += job.cost if billed is None else billed
            self._reserved -= job.cost
            job.cost = 0.0
            self._set(job, "downloading")
            return
        error = prediction.error or {
            "canceled": "the prediction was canceled (past its deadline, or by someone else)",
            "aborted": "the prediction never started before its deadline",
        }.get(prediction.status, f"the prediction ended {prediction.status}")
        skipped = self._store.record_terminal(
            row.id,
            status=prediction.status,
            error=error,
            urls=(),
            url_until=0.0,
            completed_at=prediction.completed_at,
            predict_time=prediction.predict_time,
        )
        self._set(job, prediction.status, message=error)
        for stage, n in skipped.items():
            self.tracker.move(stage, "pending", "skipped", n)
        raise _Ended

    async def _download_all(self, job: _Job) -> None:
        """Fetch every output not yet on disk (retried). OutputGoneError if the API says an output is gone;
        DownloadError if one could not be fetched although the API still has it."""
        row = job.row
        outputs = self._store.outputs(row.id)
        if not outputs:
            if self._store.job(row.id).status == "downloading":
                await self._check_gone(row.id)  # succeeded without outputs: removed, or none were made
            return
        for output in outputs:
            if output.file_name:
                path = inside(self.settings.out_dir, output.file_name)
                if path is not None and path.is_file():
                    continue
            if not output.url or (output.url_until is not None and output.url_until <= self._wall()):
                await self._check_gone(row.id)  # a URL past its freshness: ask before downloading
            if not output.url:
                raise DownloadError(f"output {output.idx} of job {row.id} has no URL recorded")
            url = output.url

            async def fetch(url: str = url, idx: int = output.idx) -> Any:
                self._client.calls["download"] += 1
                return await download(
                    self._client.http,
                    url,
                    self.settings.out_dir,
                    image_dir(row.job.stage, row.seq),
                    row.job.file_stem(idx),
                    headers=self._client.auth_headers(url),
                    max_bytes=self.settings.max_download_bytes,
                    deadline_s=self.settings.download_deadline_s,
                )

            try:
                info = await retry_call(fetch, sleep=self._sleep, rng=self._rng, on_retry=self._on_retry)
            except DownloadError:
                await self._check_gone(row.id)  # a file host's 404 is not the API saying it is gone
                raise
            thumb = await self._make_thumbnail(info.file_name)
            self._store.record_download(row.id, output.idx, info, thumb)

    async def _check_gone(self, job_id: str) -> None:
        """OutputGoneError if the API says the job's prediction has lost its output: ``data_removed``, or
        past the retention by the prediction's own ``completed_at`` (in the API's time, as measured)."""
        prediction_id = self._store.job(job_id).prediction_id
        if prediction_id is None:
            return
        prediction = await self._other(partial(self._client.get, prediction_id))
        completed = epoch_of(prediction.completed_at)
        api_now = self._wall() + (self._offsets.low if self._offsets.samples else 0.0)
        if prediction.data_removed:
            raise OutputGoneError(f"the API removed the output of prediction {prediction_id}")
        if completed is not None and api_now >= completed + self.settings.retention_s:
            raise OutputGoneError(
                f"prediction {prediction_id} completed {api_now - completed:.0f} s ago, past the API's "
                f"{self.settings.retention_s:.0f}-s retention of outputs"
            )

    async def _make_thumbnail(self, rel_path: str) -> str | None:
        if self._thumbnail is None:
            return None
        try:
            return await asyncio.to_thread(self._thumbnail, self.settings.out_dir, rel_path)
        except Exception as exc:  # a thumbnail is a convenience: never fail a job over it
            self._store.log_error(None, f"thumbnail for {rel_path} failed: {exc}")
            return None

    # -- helpers ----------------------------------------------------------------------------------------

    async def _other(self, call: Callable[[], Awaitable[T]]) -> T:
        """A non-create API call: paced by the other limiter, retried on transient failures."""

        async def once() -> T:
            await self._other_limiter.acquire()
            return await call()

        return await self._retrying(once)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_call(call, sleep=self._sleep, rng=self._rng, on_retry=self._on_retry)

    def _on_retry(self, err: FluxBatchError, delay: float) -> None:
        self.stats.retries += 1
        if isinstance(err, RateLimitedError):
            self.stats.throttled_429 += 1
            self.tracker.throttled += 1
            self._other_limiter.throttled(err.retry_after)

    def _set(self, job: _Job, status: str, message: str = "") -> None:
        self.tracker.move(job.row.job.stage, job.status, status)
        job.status = status
        self._on_event(Event("job", job.row.job.stage, job.row.id, status, message), self.tracker)

    def _fail(self, job: _Job, status: str, error: str) -> None:
        skipped = self._store.mark_failed(job.row.id, status, error)
        self._set(job, status, message=error)
        for stage, n in skipped.items():
            self.tracker.move(stage, "pending", "skipped", n)

    def _stop_everything(self, err: FluxBatchError) -> None:
        if self._fatal is None:
            self._fatal = err
            self._notice(f"stopping: {err}")
        self._stop_submitting = True
        for task in self._tasks.values():
            task.cancel()

    def _notice(self, message: str) -> None:
        self._on_event(Event("notice", message=message), self.tracker)

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint when one is due and none is running."""
        if self._checkpoint is None or self._checkpointing is not None:
            return
        if self._clock() - self._last_checkpoint >= self._checkpoint_every:
            self._checkpointing = asyncio.ensure_future(self._checkpoint_in_thread(self._checkpoint))

    async def _checkpoint_in_thread(self, checkpoint: Callable[[], None]) -> None:
        # A checkpoint rewrites the whole CSV files: on a big folder that takes long enough that, on the
        # event loop, every create slot passing meanwhile would be released at once when it ends. In a
        # thread the loop keeps its pace; spaced so that checkpoints take at most 1/CHECKPOINT_SPACING of
        # the run's time.
        started = self._clock()
        try:
            await asyncio.to_thread(checkpoint)
        except DiskFullError as err:  # the disk is full: stop now, not at the next image
            self._stop_everything(err)
        except Exception as exc:  # a missed checkpoint must not stop the run; the final one reports errors
            self._notice(f"could not rewrite the run's tables this time: {exc}")
        finally:
            self._last_checkpoint = self._clock()
            took = self._last_checkpoint - started
            self._checkpoint_every = max(self.settings.checkpoint_every_s, CHECKPOINT_SPACING * took)
            self._checkpointing = None
