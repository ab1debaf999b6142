"""One run of a job graph on an output folder, end to end: lock, state, executor, outputs, report.

:func:`run_jobs` is what the ``run`` command (and the tests) call with a stream of jobs: it takes the
folder's lock, loads the jobs into the state store in batches (never the whole graph in memory), resumes
or starts the executor, rewrites ``manifest.csv`` and ``run.json`` as it goes, both with ``metadata.parquet``
at the end, and writes the report. The exit code follows :mod:`flux_batch.errors`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from flux_batch import __version__, defaults
from flux_batch.errors import (
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    StorageError,
    UsageError,
    storage_error,
)
from flux_batch.jobs import Job
from flux_batch.jobs.status import JobStatus, fold_counts
from flux_batch.outputs.derived import end_shared_pool
from flux_batch.outputs.relayout import relayout
from flux_batch.outputs.snapshot import Snapshot, TableProcess
from flux_batch.outputs.tables import write_run_json
from flux_batch.report.leftovers import sweep_locked
from flux_batch.runner.client import ApiClient
from flux_batch.runner.download import remove_partials, reopen_missing_files
from flux_batch.runner.executor import Executor, RunResult, RunSettings
from flux_batch.runner.image_work import ImageWork
from flux_batch.runner.lock import FolderLock
from flux_batch.runner.progress import OnEvent, ignore
from flux_batch.runner.ratelimit import Limiter
from flux_batch.runner.state.store import Store

INGEST_BATCH = 2000
#: The state's ``meta`` key naming the manifest whose run the folder holds (``{"name": ..., "path": ...}``).
OWNER_META_KEY = "manifest"
#: The state's ``meta`` key of the checks the run's manifest passed (flux_batch.jobs.checks.check_record).
CHECKS_META_KEY = "checked"
#: Jobs checked against the state before a load is skipped (their ids, and places in manifest order).
INGEST_SAMPLE = 50
#: Whether a run writes its tables in a child process (:mod:`flux_batch.outputs.snapshot`); the quick
#: tests write them in theirs, where a child's start would cost more than their whole run.
TABLES_IN_CHILD = True
#: Whether the image worker processes outlive a run (:func:`flux_batch.outputs.derived.shared_pool`). A run
#: ends them once its images are done, so that their memory is gone before its final tables and report
#: (the peak of all its processes together, docs/benchmarks.md); the quick tests keep them for the next
#: test's run, whose own start of a worker would cost more than the run.
IMAGE_WORKERS_KEPT = False


@dataclass(frozen=True)
class ApiTarget:
    """Where and how fast: the base URL, the token (None for none), limits per minute (None: unlimited)."""

    base_url: str
    token: str | None
    create_rpm: float | None = defaults.CREATE_RPM
    other_rpm: float | None = defaults.OTHER_RPM
    burst: int = defaults.BURST


@dataclass(frozen=True)
class RunInfo:
    """What run.json records besides the summary: the manifest (path, sha256, document), plan, stages;
    ``owner``, recorded in the state, names the manifest the folder now belongs to; ``checked``, recorded
    there too, says that the manifest passed its job checks (:func:`flux_batch.jobs.checks.check_record`)."""

    manifest: Mapping[str, Any] | None = None
    plan: Mapping[str, Any] | None = None
    stages: tuple[Mapping[str, Any], ...] = ()
    owner: Mapping[str, Any] | None = None
    checked: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SessionResult:
    result: RunResult
    counts: dict[str, int]
    images: int
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(out_dir: Path, *, make_missing: bool = True) -> str | None:
    """Write report.html (and grids); return an error message instead of raising: the run's outputs
    are complete without it. ``make_missing``: make the thumbnails and quality values the run did not
    (not after a stop: its user waits for it to exit)."""
    try:
        from flux_batch.report import write_report as report
    except ImportError:  # pragma: no cover
        return "the report package is not available"
    try:
        report(out_dir, make_missing=make_missing)
    except Exception as exc:
        return f"the report could not be written: {exc}"
    return None


#: A run that ends with this many images still to check says so while it waits for them.
IMAGES_NOTICE = 200

#: errno values that say the output folder's path cannot be a folder at all (a file in the way, /proc).
_NOT_A_FOLDER = frozenset({errno.EEXIST, errno.ENOTDIR, errno.ENOENT, errno.EISDIR, errno.ENAMETOOLONG})


def open_folder(out_dir: Path) -> None:
    """Make ``out_dir`` if needed; UsageError if it cannot be a folder (a file, a path under /proc),
    StorageError if it cannot be written (read-only, disk full)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is a file, not a folder: give --out a folder (new, or an earlier run's)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in _NOT_A_FOLDER:
            raise UsageError(f"cannot make the output folder {out_dir}: {exc.strerror}") from exc
        raise storage_error(exc, f"the output folder {out_dir}") from exc


def ingest(
    store: Store,
    jobs: Iterable[tuple[Job, float | None]],
    *,
    retry_failed: bool,
    reseed: bool,
    fingerprint: str | None = None,
) -> bool:
    """Load the manifest's jobs into the store in batches, then decide what this run does. Returns
    whether the jobs were loaded.

    With the manifest's ``fingerprint`` (:mod:`flux_batch.jobs.fingerprint`): when the state's last complete
    load was of that same manifest and its first jobs are in the state where they should be, the state
    already holds every job, and loading them again (most of a big resume's start-up) is skipped."""
    iterator = iter(jobs)
    if fingerprint is not None and store.ingested() == fingerprint:
        sample = list(itertools.islice(iterator, INGEST_SAMPLE))
        if store.live_in_order(job for job, _ in sample):
            store.prepare_run(retry_failed=retry_failed, reseed=reseed)
            return False
        iterator = itertools.chain(sample, iterator)
    store.begin_ingest()
    while batch := list(itertools.islice(iterator, INGEST_BATCH)):
        store.add_jobs(batch)
    store.prepare_run(retry_failed=retry_failed, reseed=reseed)
    if fingerprint is not None:
        store.finish_ingest(fingerprint)
    return True


def exit_code(result: RunResult, counts: Mapping[str, int]) -> int:
    if result.fatal is not None:
        return result.fatal.exit_code
    if result.interrupted:
        return EXIT_INTERRUPTED
    if any(n for status, n in counts.items() if status != JobStatus.SUCCEEDED):
        return EXIT_JOBS_FAILED
    return EXIT_OK


async def run_jobs(
    jobs: Iterable[tuple[Job, float | None]],
    settings: RunSettings,
    api: ApiTarget,
    http: httpx.AsyncClient,
    *,
    info: RunInfo | None = None,
    retry_failed: bool = False,
    reseed: bool = False,
    on_event: OnEvent = ignore,
    on_executor: Callable[[Executor], None] | None = None,
    on_end: Callable[[], None] | None = None,
    thumbnails: bool = True,
    report: bool = True,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    fingerprint: str | None = None,
) -> SessionResult:
    """Run ``(job, estimated cost)`` pairs into ``settings.out_dir`` (resuming what is there).
    ``fingerprint``: the manifest's (:mod:`flux_batch.jobs.fingerprint`), to skip loading jobs already
    loaded. ``on_end`` is called when the jobs are over, before the run's end (the last images' checks,
    the tables, the report)."""
    out_dir = settings.out_dir
    info = info or RunInfo()
    open_folder(out_dir)
    with FolderLock(out_dir):
        store = Store.open(out_dir, clock=wall_clock)
        tables = TableProcess(in_child=TABLES_IN_CHILD)
        try:
            if info.owner:
                store.set_meta(OWNER_META_KEY, dict(info.owner))
            if info.checked:
                store.set_meta(CHECKS_META_KEY, dict(info.checked))
            ingest(store, jobs, retry_failed=retry_failed, reseed=reseed, fingerprint=fingerprint)
            relayout(store, out_dir)  # before missing files are looked for: it moves them
            reopen_missing_files(store, out_dir)
            try:
                remove_partials(out_dir)
                sweep_locked(out_dir)
            except OSError as exc:
                raise storage_error(exc, f"cleaning up {out_dir}") from exc
            client = ApiClient(http, api.base_url, api.token, wall_clock=wall_clock)
            started = wall_clock()
            started_mono = clock()
            summary: dict[str, Any] = {}

            def checkpoint(finished: RunResult | None = None) -> None:
                """Rewrite manifest.csv and run.json from one snapshot of the state, and metadata.parquet
                too in the last one (``finished``: how the run ended). During the run the executor calls
                this in a worker thread; the tables are written in their own process
                (:mod:`flux_batch.outputs.snapshot`), which imports pyarrow only for the last one."""
                seen = tables.write(out_dir, parquet=finished is not None)
                new = _summary(seen, executor, started, started_mono, clock, wall_clock, finished)
                try:
                    write_run_json(out_dir, _run_json(info, new))
                except OSError as exc:
                    raise storage_error(exc, f"writing the tables in {out_dir}") from exc
                summary.clear()
                summary.update(new)

            images = ImageWork(store, out_dir, thumbnails=thumbnails, clock=clock)
            images.load_unknown()
            executor = Executor(
                store,
                client,
                settings,
                create_limiter=Limiter(api.create_rpm, api.burst, clock=clock, sleep=sleep),
                other_limiter=Limiter(api.other_rpm, api.burst * 5, clock=clock, sleep=sleep),
                clock=clock,
                wall_clock=wall_clock,
                sleep=sleep,
                rng=rng,
                on_event=on_event,
                images=images,
                checkpoint=checkpoint,
            )
            if on_executor is not None:
                on_executor(executor)
            try:
                result = await executor.run()
                tables.close()  # no write until the final tables: the child's memory leaves meanwhile
                if on_end is not None:
                    on_end()
                try:
                    if not result.interrupted and result.fatal is None:
                        if images.pending >= IMAGES_NOTICE:
                            message = f"making the thumbnails and checks of {images.pending:,} images"
                            on_event_notice(on_event, executor, message)
                        await images.drain()  # the final tables carry every image's quality
                except StorageError as err:
                    result = dataclasses.replace(result, fatal=result.fatal or err)
            finally:
                images.close()  # what is not made stays unknown, for the next run or the report
                if not IMAGE_WORKERS_KEPT:
                    end_shared_pool()  # gone before the final tables and the report
            try:
                checkpoint(finished=result)
            except StorageError as err:  # the state is intact; the tables are rewritten by the next run
                result = dataclasses.replace(result, fatal=result.fatal or err)
            finally:
                tables.close()  # its memory leaves before the report is written
            counts = _public_counts(store)
        finally:
            tables.close()
            store.close()
    if report:
        problem = write_report(out_dir, make_missing=not (result.interrupted or result.fatal))
        if problem:
            on_event_notice(on_event, executor, problem)
    return SessionResult(
        result, counts, int(summary.get("images", 0)), exit_code(result, counts), dict(summary)
    )


def on_event_notice(on_event: OnEvent, executor: Executor, message: str) -> None:
    from flux_batch.runner.progress import Event

    on_event(Event("notice", message=message), executor.tracker)


def _public_counts(store: Store) -> dict[str, int]:
    return fold_counts(*store.counts().values())


def _summary(
    seen: Snapshot,
    executor: Executor,
    started: float,
    started_mono: float,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
    finished: RunResult | None,
) -> dict[str, Any]:
    counts = seen.counts
    wall = clock() - started_mono
    calls = {
        kind: executor._client.calls.get(kind, 0) for kind in ("create", "get", "list", "cancel", "upload")
    }
    calls["download"] = executor._client.calls.get("download", 0)
    stats = executor.stats
    return {
        "counts": counts,
        "jobs": sum(counts.values()),
        "images": seen.images,
        "cost_usd": round(seen.spent_usd, 6),
        "wall_time_s": round(wall, 3),
        "started_at": _iso(started),
        "finished_at": _iso(wall_clock()) if finished else None,
        "interrupted": bool(finished and finished.interrupted),
        "stopped": _stopped(finished),
        "api_calls": calls,
        "throttled_429": stats.throttled_429,
        "retries": stats.retries,
        "possible_duplicates": stats.possible_duplicates,
        "ambiguous_creates": stats.ambiguous_creates,
        "reattached": stats.reattached,
        "recreated": stats.recreated,
        "create_rate_per_min": round(calls["create"] / wall * 60, 2) if wall > 0 else 0.0,
        **seen.quality,
    }


def _stopped(result: RunResult | None) -> str | None:
    """Why the run stopped before its jobs were done, if it did: a fatal error, or the budget."""
    if result is None:
        return None
    if result.fatal is not None:
        return str(result.fatal)
    return "the budget was reached" if result.budget_reached else None


def _run_json(info: RunInfo, summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "flux_batch_version": __version__,
        "manifest": dict(info.manifest or {}),
        "plan": dict(info.plan or {}),
        "stages": [dict(s) for s in info.stages],
        "summary": dict(summary),
    }
