"""One job's way from the state store to its files, as a state machine that ends in an :class:`Outcome`.

Each job is driven through the write-ahead steps of :mod:`flux_batch.runner.state.store`:

    create (Prefer: wait, Cancel-After) -> [poll with backoff until done] -> download -> succeeded

Create calls go through the create limiter, everything else through the other limiter. A 429 on create
slows the whole create stream; a timeout, dropped connection or 5xx on create is *ambiguous* and is
resolved by :mod:`flux_batch.runner.reconcile` before anything is created again; a create that was
answered is never ambiguous: its id is kept, or, without a usable one, the job fails. 422 fails the one
job; a few identical 404s on create before any create worked stop the run (the base URL is wrong).

A failed download is retried; if it still fails, the API is asked whether the output is gone
(:mod:`flux_batch.runner.fetch`): only then is the prediction created again, at most ``max_redo`` times a
run, counted in ``RunStats.recreated``. Otherwise the job ends ``download_failed`` with its prediction
kept, for the next run to download.

:meth:`JobFlow.run` returns how the job ended; no exception but the store's own (recording the end
failed) leaves it. Inside, each step returns what it got to (a :class:`Prediction`) or how the job ended
there (an :class:`Outcome`: the job reached a final status, or the run is stopping), and its caller returns
that outcome in turn; exceptions are left for errors, which :meth:`JobFlow.run` turns into outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from flux_batch.errors import (
    AuthError,
    BillingError,
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
from flux_batch.jobs.status import JobStatus
from flux_batch.runner.client import Prediction
from flux_batch.runner.clock_offset import OffsetRange, Window, landed_by
from flux_batch.runner.context import Job, RunContext
from flux_batch.runner.fetch import Fetcher
from flux_batch.runner.inputs import InputResolver
from flux_batch.runner.progress import Event
from flux_batch.runner.reconcile import Found, find_created, should_create_again
from flux_batch.runner.retry import POLL_BACKOFF, REQUEST_BACKOFF
from flux_batch.runner.state.group_sync import GroupSync
from flux_batch.runner.state.store import JobRow
from flux_batch.timestamps import parse_epoch


class Outcome(Enum):
    """How a job's flow ended."""

    SUCCEEDED = "succeeded"  # its files are in place
    ENDED = "ended"  # another final status was recorded (failed, canceled, expired, download_failed...)
    STOPPED = "stopped"  # the run is stopping: the job stays as recorded, resumable
    LEFT = "left"  # an error another run may not meet: the job stays as recorded, for the next run
    FATAL = "fatal"  # an error no job can get past (the account, the endpoint, the folder)


@dataclass(frozen=True)
class JobOutcome:
    """:class:`Outcome`, with the error for ``LEFT`` (its message) and ``FATAL``."""

    outcome: Outcome
    error: FluxBatchError | None = None
    message: str = ""


def _readable_end(prediction: Prediction) -> bool:
    """Whether recording ``prediction``'s end cannot fail on its answer (an output that is not URLs): only
    then is it recorded with the create's answer, which must be kept whatever its end says."""
    try:
        prediction.output_urls()
    except ProtocolError:
        return False
    return True


class JobFlow:
    """Drives jobs, one :meth:`run` per job, sharing what a run's creates learn (the clock offset, whether
    any create worked, the creates still held by ``Prefer: wait``)."""

    def __init__(
        self,
        ctx: RunContext,
        fetcher: Fetcher,
        resolver: InputResolver,
        release: Callable[[Iterable[str]], None],
    ) -> None:
        self._ctx = ctx
        self._fetcher = fetcher
        self._resolver = resolver
        self._release = release  # downstream jobs a success made runnable
        self.held: dict[asyncio.Future[Prediction], float] = {}  # creates awaiting their answer: intent
        self._posting = 0  # creates sent and not answered yet
        self._post_ended = asyncio.Event()  # set (and replaced) each time one of them ends
        self._created_any = False  # a create was answered with a prediction in this run
        self._404s: list[tuple[str, str]] = []  # (job, stage) whose create got the same 404 in a row
        self._last_404 = ""
        # One fsync of the state's log, in a worker thread, for every intent committed before it began.
        self._intents_durable = GroupSync(lambda: asyncio.to_thread(ctx.store.sync_wal))

    async def run(self, job: Job) -> JobOutcome:
        """Drive ``job`` until it ends or the run stops it; StateError or StorageError (or another
        flux-batch error) only if recording its end failed."""
        try:
            return JobOutcome(await self._drive(job))
        except (AuthError, BillingError, EndpointError, StateError, StorageError) as err:
            return JobOutcome(Outcome.FATAL, err, str(err))
        except asyncio.CancelledError:
            return JobOutcome(Outcome.STOPPED)
        except (UnknownStatusError, InvalidInputError) as err:
            self._ctx.fail(job, "failed", str(err))
            return JobOutcome(Outcome.ENDED)
        except FluxBatchError as err:
            return JobOutcome(Outcome.LEFT, err, str(err))
        except Exception as exc:  # a defect, or a library's error: the job stays as recorded
            return JobOutcome(Outcome.LEFT, None, f"unexpected error ({type(exc).__name__}: {exc})")

    async def _drive(self, job: Job) -> Outcome:
        """SUCCEEDED, ENDED or STOPPED; the errors :meth:`run` turns into outcomes raise."""
        row = job.row
        # A job that already had a paid prediction (its output was lost in an earlier run) is being created
        # again: that counts against this run's one re-creation.
        redo = 0
        if job.status == "pending" and row.attempts and self._ctx.store.paid_before(row.id):
            redo = 1
            self._ctx.stats.recreated += 1
        while True:
            step: Prediction | Outcome | None = None
            if job.status == "pending":
                step = await self._create(job)
            elif job.status == "submitting":
                step = await self._resume_submitting(job)
            elif job.status in ("submitted", "running"):
                job.intent_at = self._last_intent(row.id)
                step = await self._ctx.other(partial(self._ctx.client.get, str(row.prediction_id)))
            if step is not None and not isinstance(step, Outcome):
                step = await self._until_done(job, step)
            if isinstance(step, Outcome):
                return step
            if step is not None:
                if job.status in ("submitting", "submitted", "running"):  # not recorded with its create
                    self._record_end(job, step)
                if step.status != "succeeded":  # its end is recorded: nothing to download
                    return Outcome.ENDED
            try:
                released = await self._fetcher.download_all(row)
            except OutputGoneError as gone:
                if redo >= self._ctx.settings.max_redo:
                    self._ctx.fail(
                        job, "expired", f"{gone}; created again {redo} time(s) in this run already"
                    )
                    return Outcome.ENDED
                redo += 1
                self._ctx.stats.recreated += 1
                self._ctx.store.reset_pending(row.id, f"{gone}; creating the prediction again")
                self._ctx.set(job, "pending")
                continue
            except DownloadError as err:
                self._ctx.fail(
                    job,
                    JobStatus.DOWNLOAD_FAILED,
                    f"{err} (the prediction is kept: run again to download it)",
                )
                return Outcome.ENDED
            if released is None:  # not marked with its last file (none was downloaded now)
                released = self._ctx.store.mark_succeeded(row.id)
            self._ctx.set(job, JobStatus.SUCCEEDED)
            self._release(released)
            return Outcome.SUCCEEDED

    def _last_intent(self, job_id: str) -> float | None:
        attempts = self._ctx.store.attempts(job_id)
        return attempts[-1].intent_at if attempts else None

    async def _create(self, job: Job) -> Prediction | Outcome:
        row = job.row
        tries = 0
        while True:
            if self._ctx.stop_submitting:
                return Outcome.STOPPED
            sent = await self._resolver.resolve(row.send_input())
            async with self._ctx.token_room:  # a few seconds of creates hold an intent waiting for a token
                if self._ctx.stop_submitting:
                    return Outcome.STOPPED
                self._ctx.store.begin_attempt(row.id, sent, self._ctx.wall(), durable=False)
                self._ctx.set(job, "submitting")
                try:
                    await self._intents_durable()  # fsynced before it is sent; the loop goes on meanwhile
                    # The token last, the moment the create goes: an fsync that was slow (or an event
                    # loop that stalled) meanwhile delays the creates behind it, never sends them
                    # together. A downstream job goes ahead of the queued upstream ones: stages overlap.
                    token = await self._ctx.create_limiter.acquire(first=bool(row.job.needs))
                except asyncio.CancelledError:
                    self._ctx.store.abandon_attempt(row.id, "not sent")
                    raise
            if self._ctx.stop_submitting:
                self._ctx.store.abandon_attempt(row.id, "not sent")
                return Outcome.STOPPED
            # When it went (after its intent, recorded above): the lower bound of its prediction's time.
            intent = job.intent_at = self._ctx.wall()
            self._ctx.sent.pop(row.id, None)  # a create sent again goes to the end
            self._ctx.sent[row.id] = intent
            try:
                prediction = await self._post(row, sent, intent)
            except RateLimitedError as err:
                self._ctx.store.abandon_attempt(row.id, "throttled")
                self._throttled(err, token)
                continue
            except (InvalidInputError, NotFoundError) as err:
                self._ctx.store.abandon_attempt(row.id, "rejected")
                self._ctx.fail(job, "failed", err.detail)
                if isinstance(err, NotFoundError):
                    self._count_404(job, err)
                return Outcome.ENDED
            except ProtocolError as err:
                # Answered, but not with a usable prediction (no JSON, no id, ...): never ambiguous, never
                # repeated. A prediction may exist that flux-batch cannot know; the job fails, saying so.
                self._ctx.store.abandon_attempt(row.id, "no prediction id")
                self._ctx.fail(
                    job, "failed", f"protocol error: {err}; not created again (--retry-failed would)"
                )
                return Outcome.ENDED
            except (TransportError, ServerError) as err:
                if isinstance(err, TransportError) and not err.sent:
                    self._ctx.store.abandon_attempt(row.id, "not sent")
                else:
                    found = await self._ambiguous(job, sent, intent, err)
                    if found is not None:
                        return found
                if self._ctx.stop_submitting:
                    return Outcome.STOPPED
                tries += 1
                await self._backoff(tries, err)
                continue
            self._created_any = True
            if prediction.done and _readable_end(prediction):
                # Answered once it ended (Prefer: wait): its end goes in the same transaction.
                self._record_end(job, prediction, answer=True)
            else:
                self._attach(job, prediction)
            return prediction

    async def _post(self, row: JobRow, sent: dict[str, Any], intent: float) -> Prediction:
        """The create request; its answer measures the clock offset (see clock_offset)."""
        self._posting += 1
        try:
            call = self._ctx.client.create(
                row.job.model,
                row.job.version,
                sent,
                wait=self._ctx.settings.wait,
                cancel_after_s=self._ctx.settings.deadline_s,
            )
            prediction = await (
                self._abandonable(call, intent) if self._ctx.settings.cancel_on_interrupt else call
            )
            created = parse_epoch(prediction.created_at)
            if created is not None:
                answered = self._ctx.wall()
                completed = parse_epoch(prediction.completed_at)
                self._ctx.offsets = self._ctx.offsets.observe(intent, answered, created, completed)
            return prediction
        finally:
            self._posting -= 1
            self._post_ended.set()
            self._post_ended = asyncio.Event()

    async def _abandonable(self, call: Awaitable[Prediction], intent: float) -> Prediction:
        """``call`` in a future of its own that an interrupt may give up (see _abandon_held_creates): that
        is a lost answer, a TransportError like a dropped connection."""
        request = asyncio.ensure_future(call)
        self.held[request] = intent
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
            del self.held[request]

    def _count_404(self, job: Job, err: NotFoundError) -> None:
        """A 404 on create. The same one a few times in a row before any create worked means the base URL
        is not the API's (the official clients' base has no ``/v1``): stop the run with a hint, and put
        those jobs back (and any that get the same answer after), as nothing was created for them."""
        if self._created_any:
            return
        if err.detail != self._last_404:
            self._last_404, self._404s = err.detail, []
        self._404s.append((job.row.id, job.row.job.stage))
        if len(self._404s) < self._ctx.settings.identical_404s and not isinstance(
            self._ctx.fatal, EndpointError
        ):
            return
        for job_id, stage in self._404s:
            self._ctx.store.reset_pending(job_id, None)
            self._ctx.tracker.move(stage, "failed", "pending")
        count, self._404s = len(self._404s), []
        if self._ctx.fatal is not None:
            return
        base = self._ctx.client.base_url
        if urlsplit(base).path.rstrip("/").endswith("/v1"):
            hint = "check the base URL (and that the models exist for this account)"
        else:
            hint = f"did you mean {base}/v1?"
        self._ctx.stop_everything(
            EndpointError(
                f"{count} creates in a row got the same 404 ({err.detail}) from {base}: it does not look "
                f"like the predictions API; {hint}",
                status=404,
                detail=err.detail,
            )
        )

    async def _backoff(self, tries: int, err: FluxBatchError) -> None:
        if tries >= self._ctx.settings.max_create_tries:
            raise err
        self._ctx.stats.retries += 1
        await self._ctx.sleep(REQUEST_BACKOFF(tries, self._ctx.rng))

    def _throttled(self, err: RateLimitedError, sent_at: float) -> None:
        if self._ctx.throttled(self._ctx.create_limiter, err, stated_limit=True, sent_at=sent_at):
            self._ctx.notice(
                f"the API cut creates to {err.limit_rpm:g} a minute ({err.detail}); going on at that rate:"
                " stop, fix the account and run again to go faster"
            )
        self._ctx.on_event(Event("throttled", message=str(err)), self._ctx.tracker)

    def _attach(self, job: Job, prediction: Prediction) -> None:
        self._ctx.store.attach(job.row.id, prediction.id, prediction.status, prediction.created_at)
        self._ctx.set(job, "running" if prediction.status == "processing" else "submitted")

    async def _ambiguous(
        self, job: Job, sent: dict[str, Any], intent: float, err: FluxBatchError
    ) -> Prediction | Outcome | None:
        """The create may or may not have made a prediction: find it, or decide whether to create again
        (None) or how the job ends."""
        self._ctx.stats.ambiguous_creates += 1
        sent_by = self._ctx.wall()  # the request left by now: an answer or a timeout came back
        # Early in a run nothing has answered yet: wait for a create in flight to measure the offset
        # rather than search blind (a clock more than the allowance off would be missed).
        while not self._ctx.offsets.samples and self._posting:
            await self._post_ended.wait()
        window = self._ctx.offsets.window(intent, sent_by)
        found = await self._find(job, sent, window, landed_by(intent, sent_by))
        if found is not None:
            return found
        self._ctx.store.abandon_attempt(job.row.id, "not created")
        return None

    async def _find(
        self, job: Job, sent: dict[str, Any], window: Window, landed: float
    ) -> Prediction | Outcome | None:
        """Find the prediction a create may have made, or decide whether to create again (None) or how the
        job ends (not known and the run stopping; failed, by the policy). ``landed`` (our
        clock) is the latest moment the create can still be made: a search before then that finds it is
        done, one that finds nothing proves nothing, and is made again once that moment has passed."""
        row = job.row
        found = await self._search(job, sent, window)
        wait = landed - self._ctx.wall()
        if found.prediction is None and found.listed and wait > 0:
            await self._ctx.sleep(wait)
            found = await self._search(job, sent, window)
        if found.prediction is not None:
            self._ctx.stats.reattached += 1
            self._attach(job, found.prediction)
            return found.prediction
        if not found.listed and self._ctx.stop_submitting:
            return (
                Outcome.STOPPED
            )  # not known, and not created again now: the next run settles it by the policy
        if should_create_again(found, self._ctx.settings.ambiguous_create):
            if not found.listed:
                self._ctx.stats.possible_duplicates += 1
                self._ctx.store.log_error(row.id, "possible duplicate: a create's outcome was unknown and "
                                      "this API cannot list predictions; created again")  # fmt: skip
            return None
        self._ctx.fail(
            job,
            "failed",
            "a create's outcome is unknown and this API cannot list predictions to check, so it was not "
            "repeated (api.ambiguous_create: fail); check the provider's dashboard, then run with "
            "--retry-failed",
        )
        return Outcome.ENDED

    async def _search(self, job: Job, sent: dict[str, Any], window: Window) -> Found:
        row = job.row
        # Each page of the search waits for the other-requests limiter; the search as a whole is retried.
        return await self._ctx.retrying(
            lambda: find_created(
                self._ctx.client,
                model=row.job.model,
                version=row.job.version,
                sent_input=sent,
                window=window,
                is_known=self._ctx.store.known_prediction,
                before_page=self._ctx.other_limiter.acquire,
            )
        )

    async def _resume_submitting(self, job: Job) -> Prediction | Outcome:
        """An earlier run recorded the intent to create but no prediction id: find it or create again."""
        attempts = self._ctx.store.attempts(job.row.id)
        if attempts and attempts[-1].outcome is None:
            last = attempts[-1]
            intent = job.intent_at = last.intent_at
            # Sent by an earlier run, maybe under another clock setting: the blind allowance, not this run's
            # measurements (see clock_offset). That run had ended when this one started, but its request
            # may still be on its way.
            # It waited for its fsync and its token after that intent, for how long is not known: it was
            # sent at the latest when that run ended, before this one started.
            started = self._ctx.started
            window = OffsetRange().window(intent, started, sending=started)
            found = await self._find(job, json.loads(last.sent_input), window, landed_by(started, started))
            if found is not None:
                return found
            self._ctx.store.abandon_attempt(job.row.id, "not created")
        self._ctx.set(job, "pending")
        return await self._create(job)

    async def _until_done(self, job: Job, prediction: Prediction) -> Prediction | Outcome:
        """Poll (with backoff) until the prediction ends or its deadline passes (then cancel it)."""
        start = job.intent_at if job.intent_at is not None else self._ctx.wall()
        deadline = start + self._ctx.settings.deadline_s + self._ctx.settings.deadline_grace_s
        polls = 0
        while not prediction.done:
            if prediction.status == "processing" and job.status == "submitted":
                self._ctx.store.mark_running(job.row.id)
                self._ctx.set(job, "running")
            if self._ctx.cancel_requested or self._ctx.wall() >= deadline:
                answer = await self._cancel(job, prediction, deadline_passed=not self._ctx.cancel_requested)
                if isinstance(answer, Outcome):
                    return answer
                prediction = answer
                if prediction.done:
                    break
            polls += 1
            await self._ctx.sleep(
                max(0.0, min(POLL_BACKOFF(polls, self._ctx.rng), deadline - self._ctx.wall() + 0.01))
            )
            prediction = await self._ctx.other(partial(self._ctx.client.get, prediction.id))
        return prediction

    async def _cancel(
        self, job: Job, prediction: Prediction, *, deadline_passed: bool
    ) -> Prediction | Outcome:
        with contextlib.suppress(NotFoundError, ProtocolError, ServerError, TransportError):
            prediction = await self._ctx.other(partial(self._ctx.client.cancel, prediction.id))
        if not deadline_passed and prediction.status in ("canceled", "aborted"):
            self._ctx.store.record_terminal(
                job.row.id, status="canceled", error=None, urls=(), url_until=0.0, completed_at=None,
                predict_time=None,
            )  # fmt: skip
            self._ctx.store.reset_pending(job.row.id, "canceled on interrupt; will run again")
            self._ctx.set(job, "pending")
            return Outcome.STOPPED
        if deadline_passed and not prediction.done:
            self._ctx.fail(
                job, "canceled", f"no result within the {self._ctx.settings.deadline_s:.0f} s deadline"
            )
            return Outcome.ENDED
        return prediction

    def _billed(self, row: JobRow, prediction: Prediction, outputs: int) -> float | None:
        """The job's cost from the megapixels the API billed, for a model priced by megapixel (None: keep
        the estimate, e.g. a prediction without those metrics)."""
        price = self._ctx.settings.prices.get(row.job.model)
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

    def _record_end(self, job: Job, prediction: Prediction, *, answer: bool = False) -> None:
        """Record the prediction's final status (its job's end unless it succeeded: then its downloads);
        ``answer``: it is the create's answer, and the prediction is recorded with its end."""
        row = job.row
        record = partial(
            self._ctx.store.record_terminal,
            row.id,
            answer=(prediction.id, prediction.created_at) if answer else None,
        )
        if prediction.status == "succeeded":
            urls = prediction.output_urls()
            billed = self._billed(row, prediction, len(urls))
            record(
                status="succeeded",
                error=None,
                urls=urls,
                url_until=self._ctx.wall()
                + self._ctx.settings.retention_s
                - self._ctx.settings.freshness_margin_s,
                completed_at=prediction.completed_at,
                predict_time=prediction.predict_time,
                cost_usd=billed,
            )
            if answer:
                self._ctx.set(job, "submitted")
            self._ctx.tracker.spent_usd += job.cost if billed is None else billed
            self._ctx.reserved -= job.cost
            job.cost = 0.0
            self._ctx.set(job, "downloading")
            return
        error = prediction.error or {
            "canceled": "the prediction was canceled (past its deadline, or by someone else)",
            "aborted": "the prediction never started before its deadline",
        }.get(prediction.status, f"the prediction ended {prediction.status}")
        skipped = record(
            status=prediction.status,
            error=error,
            urls=(),
            url_until=0.0,
            completed_at=prediction.completed_at,
            predict_time=prediction.predict_time,
        )
        if answer:
            self._ctx.set(job, "submitted")
        self._ctx.set(job, prediction.status, message=error)
        for stage, n in skipped.items():
            self._ctx.tracker.move(stage, "pending", "skipped", n)
