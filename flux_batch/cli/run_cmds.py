"""``flux-batch run MANIFEST`` and ``flux-batch status DIR``: thin commands over :mod:`flux_batch.runner`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import httpx

from flux_batch import defaults, models
from flux_batch.api_url import host_of
from flux_batch.cli import run_options as options
from flux_batch.cli.folder import check_owner, owner_record, read_folder
from flux_batch.cli.manifest_cmds import budget_figures, exact_money
from flux_batch.errors import EXIT_OK, UsageError
from flux_batch.job_status import DONE, FAILED
from flux_batch.manifest import ApiSettings, Manifest
from flux_batch.plan import Plan
from flux_batch.pricing import Price
from flux_batch.quality import describe as describe_flags
from flux_batch.runner.executor import Executor, RunSettings
from flux_batch.runner.http_client import http_client
from flux_batch.runner.progress import Event, Tracker
from flux_batch.runner.session import ApiTarget, RunInfo, SessionResult, run_jobs
from flux_batch.runner.state import STATE_FILE
from flux_batch.runner.status import folder_status, render

SIMULATOR_URL = "http://simulator.local/v1"
#: The in-process simulator's mean prediction time: long enough to look real, short enough for a quickstart.
SIMULATOR_LATENCY_S = 0.5
PLAIN_EVERY_S = 5.0


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run a manifest (resumes in its output folder)", description=RUN_HELP)
    run.add_argument("manifest", help="the manifest YAML file")
    run.add_argument("--out", help="output folder (default: the manifest's output, relative to its folder)")
    run.add_argument(
        "--base-url",
        type=options.base_url,
        help="API base URL, e.g. https://proxy.example/replicate/v1 (the API, even if the manifest says "
        "simulator: true)",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--simulator", action="store_true", help="run on the built-in simulator (free, no token)"
    )
    where.add_argument(
        "--no-simulator",
        action="store_true",
        help="run on the API even if the manifest says simulator: true",
    )
    run.add_argument(
        "--create-rpm",
        type=options.positive_number,
        help=f"create requests per minute (default {defaults.CREATE_RPM})",
    )
    run.add_argument(
        "--other-rpm",
        type=options.positive_number,
        help=f"other API requests per minute (default {defaults.OTHER_RPM})",
    )
    run.add_argument(
        "--max-in-flight",
        type=options.whole_number(1),
        help=f"the most predictions in flight at once (default {defaults.MAX_IN_FLIGHT}; the run keeps what "
        "the rate needs)",
    )
    run.add_argument(
        "--wait",
        type=options.wait_seconds,
        help=f"seconds a create holds for the result, 0-{defaults.MAX_WAIT_S} (default {defaults.WAIT_S}; "
        "0: do not hold, poll)",
    )
    run.add_argument(
        "--max-cost",
        type=options.positive_number,
        help="refuse to start when the folder's spend plus the work to do would pass this many USD",
    )
    run.add_argument(
        "--up-to-budget",
        action="store_true",
        help="with a cost cap: run what fits under it instead of refusing, then stop taking new jobs",
    )
    run.add_argument(
        "--max-jobs",
        type=options.whole_number(1),
        help=f"raise (or lower) the job limit (default {defaults.MAX_JOBS:,})",
    )
    run.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="do not ask (a cost above api.confirm_above_usd; a manifest's API host other than Replicate's)",
    )
    run.add_argument(
        "--retry-failed", action="store_true", help="run failed, canceled and aborted jobs again"
    )
    run.add_argument("--reseed", action="store_true", help="with --retry-failed: retry under a new seed")
    run.add_argument(
        "--switch-manifest",
        action="store_true",
        help="run in a folder that holds another manifest's run (its rows leave the CSV files)",
    )
    run.add_argument(
        "--cancel-on-interrupt", action="store_true", help="on Ctrl-C, cancel running predictions"
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    run.set_defaults(func=run_command)

    status = sub.add_parser("status", help="progress of an output folder (during or after a run)")
    status.add_argument("dir", help="the output folder")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=status_command)


RUN_HELP = """Run every job of MANIFEST at the API's rate limit, into its output folder. Running again on
the same folder resumes: finished images are kept, running predictions are re-attached, only new or
changed jobs are created. Flags override the manifest's api: settings. Exit codes: 0 all done, 1 some
jobs failed or are left, 2 invalid input (nothing submitted; or a damaged state, or a base URL that is not
the API's), 3 stopped by an auth or billing error, 4 folder in use by another run, 5 the folder cannot be
written (disk full, read-only): free space and run again, 130 interrupted."""


def status_command(args: argparse.Namespace) -> int:
    status = folder_status(Path(args.dir))
    print(json.dumps(status.to_json(), indent=2) if args.json else render(status))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    from flux_batch.expand import expand
    from flux_batch.manifest import load
    from flux_batch.plan import build_plan, job_cost

    manifest = load(args.manifest, max_jobs=args.max_jobs)
    retry_failed = bool(args.retry_failed or manifest.retry_failed)
    if args.reseed and not retry_failed:
        raise UsageError(
            "--reseed only applies to retried jobs: add --retry-failed (or set retry_failed: true in "
            "the manifest)"
        )
    choice = options.choose_api(args, manifest.api)
    api = choice.settings
    token = None if api.simulator else options.read_token(api.token_env, os.environ)
    if token and not choice.token_leaves_for_another_host:
        from flux_batch.model_fetch import fetch_unknown

        if fetch_unknown(manifest, http_client(4), api.base_url, token, _teller(args.quiet)):
            manifest = load(args.manifest, max_jobs=args.max_jobs)  # now checking those models' inputs
    max_cost = args.max_cost if args.max_cost is not None else manifest.max_cost_usd
    manifest = dataclasses.replace(manifest, api=api, max_cost_usd=max_cost)
    out_dir = Path(args.out) if args.out else manifest.output
    if not args.out:
        _refuse_moved_output(manifest)
    folder = read_folder(out_dir, manifest)
    check_owner(folder, manifest, switch=args.switch_manifest)
    plan = build_plan(
        manifest, done=folder.done, spent_usd=folder.spent_usd, retry_failed=retry_failed, output=str(out_dir)
    )
    if plan.over_budget and not args.up_to_budget:
        raise UsageError(budget_refusal(plan))
    say = _teller(args.quiet)
    for warning in manifest.warnings:
        say(warning.render())
    say(f"flux-batch: {api_line(plan)}")
    left = _left_failed(plan) if not retry_failed else 0
    if left:
        say(
            f"flux-batch: {left:,} jobs failed in an earlier run and are left as they are: add "
            "--retry-failed to run them again (with --reseed under new seeds)"
        )
    if choice.token_leaves_for_another_host and not _confirm_host(api, args.yes):
        print("flux-batch: nothing submitted", file=sys.stderr)
        return EXIT_OK
    if (
        plan.todo_cost_usd > api.confirm_above_usd
        and not args.yes
        and sys.stdin.isatty()
        and not api.simulator
    ):
        succeeded = sum((s.done or {}).get("succeeded", 0) for s in plan.stages)
        answer = input(
            f"{plan.todo_jobs:,} jobs to do ({succeeded:,} already done), estimated "
            f"${plan.todo_cost_usd:,.2f} for them. Run? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("flux-batch: nothing submitted", file=sys.stderr)
            return EXIT_OK
    settings = RunSettings(
        out_dir=out_dir,
        base_dir=manifest.path.parent,
        max_in_flight=api.max_in_flight,
        wait=api.wait,
        deadline_s=api.deadline_s,
        ambiguous_create=api.ambiguous_create,
        max_cost_usd=max_cost,
        cancel_on_interrupt=args.cancel_on_interrupt,
        prices=model_prices(manifest),
    )
    target = ApiTarget(
        base_url=SIMULATOR_URL if api.simulator else api.base_url,
        token="simulator" if api.simulator else token,
        create_rpm=api.create_rpm,
        other_rpm=api.other_rpm,
        burst=api.burst,
    )
    info = RunInfo(
        manifest={
            "path": str(manifest.path.resolve()),
            "sha256": hashlib.sha256(manifest.path.read_bytes()).hexdigest(),
            "document": manifest.document,
        },
        plan=plan.to_json(),
        stages=tuple(
            {
                "id": s.id,
                "model": s.model,
                "needs": list(s.needs),
                "vars": list(s.var_names),
                "product_axes": list(s.product_axes),
            }
            for s in manifest.stages
        ),
        owner=owner_record(manifest),
    )
    specs: dict[str, Any] = {}

    def jobs() -> Iterator[tuple[Any, float | None]]:
        for job in expand(manifest):
            spec = specs.get(job.model)
            if spec is None:
                spec = specs[job.model] = manifest.spec(job.model)
            yield job, job_cost(job, spec)

    view = ProgressView(sys.stderr, quiet=args.quiet)
    reseed = bool(args.reseed or manifest.reseed_failed)
    simulated = simulated_models(manifest) if api.simulator else ()
    result = asyncio.run(
        _run(
            jobs(),
            settings,
            target,
            api.simulator,
            info,
            retry_failed,
            reseed,
            view,
            folder.fingerprint,
            simulated,
        )
    )
    view.close()
    return _finish(result, out_dir, args.quiet, view.tally, folder.spent_usd, simulated=api.simulator)


def model_prices(manifest: Manifest) -> dict[str, Price]:
    """The price of each model the manifest's jobs use (the manifest's own prices applied)."""
    return {
        name: price for name in manifest.model_names() if (price := manifest.spec(name).price) is not None
    }


def simulated_models(manifest: Manifest) -> tuple[Any, ...]:
    """The models of a manifest the simulator does not have built in: from the manifest's schema files
    or the cache of fetched ones, or, with no schema at all, taking any input."""
    from flux_batch.simulator.catalog import permissive

    specs = []
    for name in manifest.model_names():
        if name in models.known_models():
            continue
        spec = manifest.spec(name)
        specs.append(spec if spec.known else permissive(name))
    return tuple(specs)


def api_line(plan: Plan) -> str:
    """Where the requests go and which token goes with them (never the token itself)."""
    api = plan.api
    if api.get("simulator"):
        return "API: the built-in simulator (free: no token, nothing billed)"
    return f"API: {api['base_url']} (token from ${api['token_env']})"


def budget_refusal(plan: Plan) -> str:
    """Why ``run`` refuses to start over the cost cap, and the ways on."""
    return (
        f"over the budget: {budget_figures(plan)} is more than the {exact_money(plan.max_cost_usd or 0.0)} "
        "cap (max_cost_usd or --max-cost); nothing submitted: raise the cap, shrink the sweep, or add "
        "--up-to-budget to run jobs until the cap"
    )


def _left_failed(plan: Plan) -> int:
    return sum((s.done or {}).get(k, 0) for s in plan.stages for k in FAILED)


def _confirm_host(api: ApiSettings, yes: bool) -> bool:
    """Ask before the token leaves for a host the manifest chose; refuse when nobody can be asked."""
    host = host_of(api.base_url)
    what = f"the manifest sends the API token in ${api.token_env} to {host}, which is not Replicate's API"
    if yes:
        print(f"flux-batch: {what} (--yes)", file=sys.stderr)
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what}: if you trust that host, run again with --yes (or name it yourself with --base-url); "
            "nothing submitted"
        )
    answer = input(f"flux-batch: {what}. Send it there? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _refuse_moved_output(manifest: Manifest) -> None:
    """A relative ``output:`` used to be taken from the working directory: rather than start afresh (and
    pay again) beside a folder that an earlier run left there, say where it is."""
    written = Path(str(manifest.document.get("output", "")))
    new = manifest.output
    if written.is_absolute() or not written.parts or (new / STATE_FILE).exists():
        return
    if (written / STATE_FILE).exists() and written.resolve() != new.resolve():
        raise UsageError(
            f"{written} holds an earlier run of this manifest, but its output folder is now {new} "
            "(a relative output: is taken from the manifest's folder, not the working directory): "
            f"resume it with --out {written}, or move it to {new}; nothing submitted"
        )


def _teller(quiet: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr)

    return say


async def _run(
    jobs: Iterator[tuple[Any, float | None]],
    settings: RunSettings,
    target: ApiTarget,
    simulator: bool,
    info: RunInfo,
    retry_failed: bool,
    reseed: bool,
    view: ProgressView,
    fingerprint: str,
    simulated_models: tuple[Any, ...] = (),
) -> SessionResult:
    loop = asyncio.get_running_loop()
    handlers: list[int] = []

    def on_executor(executor: Executor) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, executor.interrupt)
                handlers.append(sig)

    if simulator:
        from flux_batch.simulator import SimConfig, create_app

        app = create_app(SimConfig(latency=SIMULATOR_LATENCY_S, models=simulated_models))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    else:
        http = http_client(settings.max_in_flight)
    try:
        async with http:
            return await run_jobs(
                jobs,
                settings,
                target,
                http,
                info=info,
                retry_failed=retry_failed,
                reseed=reseed,
                on_event=view.on_event,
                on_executor=on_executor,
                fingerprint=fingerprint,
            )
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)


def _finish(
    session: SessionResult,
    out_dir: Path,
    quiet: bool,
    tally: Mapping[str, int],
    spent_before: float,
    *,
    simulated: bool,
) -> int:
    """The last lines: what this run did and cost, then where the folder stands (all runs)."""
    result = session.result
    spent = float(session.summary.get("cost_usd", 0.0))
    wall = session.summary.get("wall_time_s", 0.0)
    this_run = ", ".join(f"{n:,} {status}" for status, n in sorted(tally.items()) if n) or "no job ended"
    prices = " at API prices (simulator: nothing billed)" if simulated else ""
    recreated = session.summary.get("recreated", 0)
    again = f"; {recreated} created again as the API no longer had their output" if recreated else ""
    total = sum(session.counts.values())
    folder = ", ".join(f"{n:,} {status}" for status, n in sorted(session.counts.items()))
    flagged = describe_flags(session.summary)
    flagged = f" ({flagged})" if flagged else ""
    folder_line = (
        f"flux-batch: {out_dir}: {folder} of {total:,} jobs, {session.images:,} images{flagged}; "
        f"${spent:,.2f}{prices} spent there in all (manifest.csv, report.html)"
    )
    if result.fatal is not None:
        print(f"flux-batch: error: {result.fatal}", file=sys.stderr)
        stopped = f"flux-batch: stopped; this run: {this_run}{again}; fix that and run again to resume"
        print(stopped, file=sys.stderr)
        print(folder_line, file=sys.stderr)
        return session.exit_code
    if not quiet or session.exit_code:
        what = "interrupted" if result.interrupted else "finished"
        cost = max(0.0, spent - spent_before)
        print(
            f"flux-batch: {what} in {wall:.1f} s; this run: {this_run}, ${cost:,.2f}{prices}{again}",
            file=sys.stderr,
        )
        print(folder_line, file=sys.stderr)
    if result.budget_reached:
        print(
            "flux-batch: stopped taking new jobs at the cost cap; raise --max-cost (or max_cost_usd) and "
            "run again to continue",
            file=sys.stderr,
        )
    if result.stats.unfinished:
        print(
            f"flux-batch: {result.stats.unfinished} jobs hit repeated errors and are left for the next run "
            f"(see `flux-batch status {out_dir}`)",
            file=sys.stderr,
        )
    failed = sum(session.counts.get(s, 0) for s in FAILED)
    if failed and not result.interrupted:
        print(
            f"flux-batch: {failed:,} jobs failed (see `flux-batch status {out_dir}`): run again with "
            "--retry-failed to retry them",
            file=sys.stderr,
        )
    return session.exit_code


class ProgressView:
    """Progress for a human: tqdm bars on a terminal, a plain line every few seconds otherwise, or
    nothing with ``--quiet``. Notices (throttling, stopping, the budget) are printed unless quiet."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self.tally: Counter[str] = Counter()  # jobs that ended in this run, by status
        self._tty = stream.isatty()
        self._bars: dict[str, Any] = {}
        self._last = 0.0
        self._last_throttle_note = 0.0

    def on_event(self, event: Event, tracker: Tracker) -> None:
        if event.kind == "job" and event.status in DONE:
            self.tally[event.status] += 1
        if self._quiet:
            return
        try:
            self._show(event, tracker)
        except OSError:  # the reader of our output went away (`| head`): the run goes on, silently
            self._quiet = True

    def _show(self, event: Event, tracker: Tracker) -> None:
        now = time.monotonic()
        if event.kind == "notice":
            self._write(f"flux-batch: {event.message}")
        elif event.kind == "throttled" and now - self._last_throttle_note > 10:
            self._last_throttle_note = now
            self._write(f"flux-batch: throttled by the API; slowing down ({event.message})")
        if now - self._last < (0.2 if self._tty else PLAIN_EVERY_S) and event.status not in ("", "failed"):
            return
        self._last = now
        if self._tty:
            self._draw_bars(tracker)
        else:
            self._write(_line(tracker))

    def _write(self, text: str) -> None:
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=self._stream)
        else:
            print(text, file=self._stream, flush=True)

    def _draw_bars(self, tracker: Tracker) -> None:
        from tqdm import tqdm

        snap = tracker.snapshot()
        rows = [("all", snap.counts)] + [(stage, {stage: snap.counts[stage]}) for stage in snap.stages]
        for name, counts in rows:
            if name == "all" and len(rows) == 2:
                continue
            total = sum(sum(by.values()) for by in counts.values())
            done = sum(by.get(s, 0) for by in counts.values() for s in DONE)
            bar = self._bars.get(name)
            if bar is None:
                bar = self._bars[name] = tqdm(
                    total=total,
                    desc=name,
                    position=len(self._bars),
                    file=self._stream,
                    leave=True,
                    unit="job",
                )
            bar.total = total
            bar.n = done
            ok = sum(by.get("succeeded", 0) for by in counts.values())
            bad = done - ok
            busy = sum(by.get(s, 0) for by in counts.values() for s in ("submitted", "running"))
            postfix = f"ok={ok} failed={bad} in flight={busy}"
            if name == "all" or len(rows) == 2:
                postfix += f" ${snap.spent_usd:.2f}"
            bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            with contextlib.suppress(OSError):
                bar.close()


def _line(tracker: Tracker) -> str:
    snap = tracker.snapshot()
    eta = f"{snap.eta_s:.0f}s" if snap.eta_s is not None else "?"
    return (
        f"flux-batch: {snap.done}/{snap.total} done ({snap.succeeded} ok, {snap.failed} failed), "
        f"{snap.in_flight} in flight, ${snap.spent_usd:.2f}, {snap.rate_per_s * 60:.0f}/min, ETA {eta}"
    )
