"""flux-batch as a library: the few calls a script or a notebook needs, each over the same code as the
command line (``flux-batch run`` is :func:`prepare_run` and :func:`execute` plus progress bars).

    >>> import flux_batch
    >>> manifest = flux_batch.loads({
    ...     "version": 1, "name": "cats", "api": {"simulator": True},
    ...     "stages": [{"id": "cat", "model": "black-forest-labs/flux-schnell",
    ...                 "prompt": "a {color} cat", "matrix": {"color": ["red", "blue"]}}],
    ... }, base_dir="/tmp/cats")
    >>> flux_batch.plan(manifest).jobs
    2

Then ``result = flux_batch.run(manifest)`` (or ``await flux_batch.arun(manifest)`` where an event loop is
already running, as in Jupyter), ``flux_batch.results(result.out_dir).to_pandas()`` and
``flux_batch.status(result.out_dir)``. Every error is a :class:`flux_batch.errors.FluxBatchError`;
progress reaches the caller through ``on_event(event, tracker)``, never through printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from flux_batch.errors import EXIT_OK, FluxBatchError, UsageError
from flux_batch.jobs.checks import checked
from flux_batch.jobs.plan import Plan, build_plan
from flux_batch.jobs.status import DONE, FAILED
from flux_batch.manifest import Manifest, read, read_text
from flux_batch.outputs.results import Results, read_results
from flux_batch.report.data import Row
from flux_batch.runner.executor import Executor
from flux_batch.runner.folder import earlier_checks, read_folder
from flux_batch.runner.http_client import http_client
from flux_batch.runner.prepare import Prepared, RunChoices, host_question, prepare
from flux_batch.runner.progress import Event, OnEvent, Tracker
from flux_batch.runner.session import SessionResult, run_jobs
from flux_batch.runner.status import FolderStatus, folder_status

__all__ = [
    "Declined",
    "Event",
    "FolderStatus",
    "Plan",
    "Prepared",
    "Results",
    "Row",
    "RunResult",
    "Tracker",
    "arun",
    "execute",
    "load",
    "loads",
    "plan",
    "prepare_run",
    "results",
    "run",
    "status",
]

#: The built-in simulator's mean prediction time: long enough to look real, short enough for a quickstart.
SIMULATOR_LATENCY_S = 0.5


class Declined(FluxBatchError):
    """The caller (or the person asked) did not agree to a question; nothing was submitted."""

    exit_code = EXIT_OK


def load(
    path: str | os.PathLike[str],
    *,
    max_jobs: int | None = None,
    resume: bool | str | os.PathLike[str] = False,
) -> Manifest:
    """Read and validate the manifest file at ``path``.

    Raises :class:`flux_batch.errors.ManifestError` carrying every issue at once (``err.issues``, each
    with file, line, column, JSON path, message and hint); warnings are kept in ``manifest.warnings``.

    ``resume``: the output folder the manifest is loaded to run in (True: its own ``output``). When a run
    there already checked this very manifest (the same text and files, model schemas, job limit and
    flux-batch), every job is not checked again: at 100,000 jobs that is seconds of a resume's start-up.
    The file itself is always read and checked.

    >>> manifest = flux_batch.load("pipelines/quickstart.yaml")  # doctest: +SKIP
    """
    loaded = read(Path(path), max_jobs=max_jobs)
    if resume is False:
        return checked(loaded)
    out = loaded.manifest.output if resume is True else Path(resume)
    return checked(loaded, earlier=earlier_checks(out))


def loads(
    source: str | Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] = ".",
    name: str = "manifest.yaml",
    max_jobs: int | None = None,
) -> Manifest:
    """Validate a manifest given as YAML text or as a mapping built in code.

    It is read as if it were the file ``base_dir/name``: its ``output`` and data files are relative to
    ``base_dir``, and issues name that file (for a mapping, the lines of its YAML form).

    >>> m = flux_batch.loads({"version": 1, "name": "one", "stages": [
    ...     {"id": "a", "model": "black-forest-labs/flux-schnell", "prompt": "a cat"}]})
    >>> m.stages[0].id
    'a'
    """
    text = source if isinstance(source, str) else yaml.safe_dump(dict(source), sort_keys=False)
    return checked(read_text(text, Path(base_dir) / name, max_jobs=max_jobs))


def plan(manifest: Manifest, *, out: str | os.PathLike[str] | None = None) -> Plan:
    """What running ``manifest`` would do: per stage its jobs, images, estimated cost and time, what the
    output folder (``out``, default the manifest's) already holds, and ``plan.iter_jobs()``.

    >>> p = flux_batch.plan(manifest)  # doctest: +SKIP
    >>> p.jobs, p.cost_usd, [s.todo for s in p.stages]  # doctest: +SKIP
    """
    out_dir = Path(out) if out is not None else manifest.output
    folder = read_folder(out_dir, manifest)
    return build_plan(
        manifest,
        done=folder.done,
        spent_usd=folder.spent_usd,
        retry_failed=manifest.retry_failed,
        output=str(out_dir),
    )


@dataclass(frozen=True)
class RunResult:
    """How a run ended and where its folder stands.

    ``counts`` are the folder's jobs by status (every run of it), ``this_run`` the jobs that ended in this
    run; ``spent_usd`` is the folder's estimated spend in all, ``cost_usd`` this run's share. ``ok`` is
    True when every job of the folder succeeded. ``error`` is the auth, billing or storage error that
    stopped the run (run again once it is fixed: it resumes). ``exit_code`` is the command line's.
    """

    out_dir: Path
    counts: Mapping[str, int]
    this_run: Mapping[str, int]
    images: int
    spent_usd: float
    cost_usd: float
    wall_time_s: float
    api_calls: Mapping[str, int]
    throttled_429: int
    possible_duplicates: int
    recreated: int
    unfinished: int
    interrupted: bool
    budget_reached: bool
    error: FluxBatchError | None
    exit_code: int
    simulated: bool
    summary: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def failed(self) -> int:
        """Jobs of the folder that failed, were canceled or aborted (``--retry-failed`` runs them again)."""
        return sum(self.counts.get(s, 0) for s in FAILED)


def prepare_run(manifest: Manifest, **choices: Any) -> Prepared:
    """Check everything a run needs before anything is sent; ``choices`` are :class:`RunChoices` fields
    (``out``, ``simulator``, ``base_url``, ``token``, ``create_rpm``, ``max_cost``, ``retry_failed``...)."""
    if choices.get("simulator") is False:  # False here means "not the simulator", None "as the manifest"
        choices["no_simulator"] = True
    choices["simulator"] = bool(choices.get("simulator"))
    if choices.get("out") is not None:
        choices["out"] = Path(choices["out"])
    path = manifest.path
    reload = (lambda: load(path, max_jobs=manifest.max_jobs)) if path.is_file() else None
    return prepare(manifest, RunChoices(**choices), os.environ, reload=reload, http=lambda n: http_client(n))


def confirm(prepared: Prepared, *, yes: bool = False, ask: Callable[[str], bool] | None = None) -> None:
    """Put ``prepared``'s questions to ``ask`` (or agree to all with ``yes``); raise :class:`Declined` on a
    no. Without anyone to ask, the token is not sent to a host the manifest chose (UsageError), and a
    cost above the threshold is run (the caller chose to run it)."""
    for kind, question in prepared.questions:
        if yes:
            continue
        if ask is None:
            if kind == "host":
                raise UsageError(
                    f"{host_question(prepared.manifest.api)}: if you trust that host, run again with --yes "
                    "(or name it yourself with --base-url); nothing submitted"
                )
            continue
        if not ask(question):
            raise Declined("nothing submitted")


async def execute(
    prepared: Prepared,
    *,
    on_event: OnEvent | None = None,
    http: httpx.AsyncClient | None = None,
    handle_signals: bool = False,
    **session: Any,
) -> RunResult:
    """Run a prepared run to its end (or its stop) and return how it went.

    ``http`` is the client to the API (default: a pooled client, or the in-process simulator when the run
    is on the simulator). ``handle_signals`` makes Ctrl-C and SIGTERM stop submitting and finish what is
    in flight (a second Ctrl-C exits at once), as the command line does. ``session`` passes ``clock``,
    ``wall_clock``, ``sleep``, ``rng``, ``report`` or ``thumbnails`` through to the runner (tests).
    """
    tally: Counter[str] = Counter()

    def events(event: Event, tracker: Tracker) -> None:
        if event.kind == "job" and event.status in DONE:
            tally[str(event.status)] += 1
        if on_event is not None:
            on_event(event, tracker)

    loop = asyncio.get_running_loop()
    installed: dict[int, Any] = {}  # signal -> its handler before the run's

    def on_executor(executor: Executor) -> None:
        if not handle_signals:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                before = signal.getsignal(sig)
                loop.add_signal_handler(sig, executor.interrupt)
                installed[sig] = before

    def on_end() -> None:
        """The jobs are over: Ctrl-C (or SIGTERM) during the run's end stops it at once, as
        KeyboardInterrupt. The end runs in this thread, where the loop's handler could not run until it is
        over (a report of 100,000 images takes tens of seconds); what it leaves unwritten the next run
        writes (the state is complete)."""
        for sig in installed:
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.default_int_handler)

    if http is None:
        if prepared.simulator:
            http = _simulator_client(prepared.simulated_models())
        else:
            http = http_client(prepared.settings.max_in_flight)
    try:
        async with http:
            session_result = await run_jobs(
                prepared.jobs(),
                prepared.settings,
                prepared.target,
                http,
                info=prepared.info,
                retry_failed=prepared.retry_failed,
                reseed=prepared.reseed,
                on_event=events,
                on_executor=on_executor,
                on_end=on_end,
                fingerprint=prepared.folder.fingerprint,
                **session,
            )
    finally:
        for sig, before in installed.items():
            loop.remove_signal_handler(sig)
            if before is not None:  # None: a handler not set from Python, left as the loop leaves it
                signal.signal(sig, before)
    return _result(prepared, session_result, tally)


async def arun(
    manifest: Manifest,
    *,
    on_event: OnEvent | None = None,
    yes: bool = False,
    ask: Callable[[str], bool] | None = None,
    **choices: Any,
) -> RunResult:
    """:func:`run` as a coroutine, for code that already runs an event loop (Jupyter, an async app)."""
    prepared = prepare_run(manifest, **choices)
    confirm(prepared, yes=yes, ask=ask)
    for note in prepared.notes:
        if on_event is not None:
            on_event(Event("notice", message=note.removeprefix("flux-batch: ")), Tracker({}))
    return await execute(prepared, on_event=on_event)


def run(
    manifest: Manifest,
    *,
    on_event: OnEvent | None = None,
    yes: bool = False,
    ask: Callable[[str], bool] | None = None,
    **choices: Any,
) -> RunResult:
    """Run ``manifest``, or resume it in its output folder, and return a :class:`RunResult`.

    ``choices``: ``out`` (the output folder), ``simulator`` (True: the built-in simulator, free; False:
    the API even if the manifest says simulator; None: as the manifest says), ``base_url``, ``token``
    (default: from the manifest's ``api.token_env``), ``create_rpm``, ``other_rpm``, ``max_in_flight``,
    ``wait``, ``max_cost``, ``up_to_budget``, ``retry_failed``, ``reseed``, ``switch_manifest``,
    ``cancel_on_interrupt``. A question (the token leaving for a host the manifest chose, a cost above
    ``api.confirm_above_usd``) goes to ``ask(question) -> bool``; ``yes=True`` agrees to all.

    >>> result = flux_batch.run(manifest, simulator=True)  # doctest: +SKIP
    >>> result.counts, result.spent_usd  # doctest: +SKIP
    ({'succeeded': 2}, 0.006)
    """
    return asyncio.run(arun(manifest, on_event=on_event, yes=yes, ask=ask, **choices))


def results(out_dir: str | os.PathLike[str]) -> Results:
    """The rows of an output folder's ``manifest.csv``, typed.

    >>> df = flux_batch.results("pipelines/out/quickstart").to_pandas()  # doctest: +SKIP
    >>> df.groupby("status").size()  # doctest: +SKIP
    """
    return read_results(Path(out_dir))


def status(out_dir: str | os.PathLike[str]) -> FolderStatus:
    """Where an output folder stands (during or after a run): counts by stage and status, spend, recent
    errors, and rate and ETA while a run is going. Safe beside a running run (read-only)."""
    return folder_status(Path(out_dir))


def _simulator_client(models: tuple[Any, ...] = ()) -> httpx.AsyncClient:
    from flux_batch.simulator import SimConfig, create_app

    app = create_app(SimConfig(latency=SIMULATOR_LATENCY_S, models=models))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def _result(prepared: Prepared, session: SessionResult, tally: Mapping[str, int]) -> RunResult:
    summary = session.summary
    spent = float(summary.get("cost_usd", 0.0))
    run = session.result
    return RunResult(
        out_dir=prepared.out_dir,
        counts=dict(session.counts),
        this_run=dict(tally),
        images=session.images,
        spent_usd=spent,
        cost_usd=max(0.0, spent - prepared.folder.spent_usd),
        wall_time_s=float(summary.get("wall_time_s", 0.0)),
        api_calls=dict(summary.get("api_calls", {})),
        throttled_429=int(summary.get("throttled_429", 0)),
        possible_duplicates=int(summary.get("possible_duplicates", 0)),
        recreated=int(summary.get("recreated", 0)),
        unfinished=run.stats.unfinished,
        interrupted=run.interrupted,
        budget_reached=run.budget_reached,
        error=run.fatal,
        exit_code=session.exit_code,
        simulated=prepared.simulator,
        summary=dict(summary),
    )
