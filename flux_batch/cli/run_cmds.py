"""``flux-batch run MANIFEST`` and ``flux-batch status DIR``: thin commands over :mod:`flux_batch.runner`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx

from flux_batch.errors import EXIT_OK, MissingTokenError
from flux_batch.runner.executor import Executor, RunSettings
from flux_batch.runner.progress import Event, Tracker
from flux_batch.runner.session import ApiTarget, RunInfo, SessionResult, run_jobs
from flux_batch.runner.state import done_counts
from flux_batch.runner.status import folder_status, render
from flux_batch.runner.transport import http_client

SIMULATOR_URL = "http://simulator.local/v1"
#: The in-process simulator's mean prediction time: long enough to look real, short enough for a quickstart.
SIMULATOR_LATENCY_S = 0.5
PLAIN_EVERY_S = 5.0


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run a manifest (resumes in its output folder)", description=RUN_HELP)
    run.add_argument("manifest", help="the manifest YAML file")
    run.add_argument("--out", help="output folder (default: the manifest's output)")
    run.add_argument("--base-url", help="API base URL, e.g. https://proxy.example/replicate/v1")
    run.add_argument(
        "--simulator", action="store_true", help="run on the built-in simulator (free, no token)"
    )
    run.add_argument("--create-rpm", type=float, help="create requests per minute (default 600)")
    run.add_argument("--other-rpm", type=float, help="other API requests per minute (default 3000)")
    run.add_argument("--max-in-flight", type=int, help="predictions running at once (default 100)")
    run.add_argument("--wait", type=int, help="seconds a create waits for the result, 1-60 (default 60)")
    run.add_argument("--max-cost", type=float, help="never let the estimated spend pass this many USD")
    run.add_argument(
        "--yes", "-y", action="store_true", help="do not ask for confirmation above the threshold"
    )
    run.add_argument(
        "--retry-failed", action="store_true", help="run failed, canceled and aborted jobs again"
    )
    run.add_argument("--reseed", action="store_true", help="with --retry-failed: retry under a new seed")
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
changed jobs are created. Exit codes: 0 all done, 1 some jobs failed or are left, 2 invalid input,
3 stopped by an auth or billing error, 4 folder in use by another run, 130 interrupted."""


def status_command(args: argparse.Namespace) -> int:
    status = folder_status(Path(args.dir))
    print(json.dumps(status.to_json(), indent=2) if args.json else render(status))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    from flux_batch.expand import expand, stage_job_ids
    from flux_batch.manifest import load
    from flux_batch.plan import build_plan, job_cost

    manifest = load(args.manifest)
    api = manifest.api
    simulator = bool(args.simulator or api.simulator)
    token = None
    if not simulator:
        token = os.environ.get(api.token_env, "").strip()
        if not token:
            raise MissingTokenError(api.token_env)
    out_dir = Path(args.out) if args.out else manifest.output
    done = done_counts(out_dir, lambda stage: stage_job_ids(manifest, stage))
    plan = build_plan(manifest, done=done)
    if manifest.warnings and not args.quiet:
        for warning in manifest.warnings:
            print(warning.render(), file=sys.stderr)
    already = sum(stage.done.get("succeeded", 0) for stage in plan.stages if stage.done)
    if plan.cost_usd > api.confirm_above_usd and not args.yes and sys.stdin.isatty() and not simulator:
        answer = input(
            f"{plan.jobs} jobs ({already} already done), estimated ${plan.cost_usd:.2f} in all. Run? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing submitted", file=sys.stderr)
            return EXIT_OK
    settings = RunSettings(
        out_dir=out_dir,
        base_dir=manifest.path.parent,
        max_in_flight=args.max_in_flight or api.max_in_flight,
        wait=args.wait or api.wait,
        deadline_s=api.deadline_s,
        ambiguous_create=api.ambiguous_create,
        max_cost_usd=args.max_cost if args.max_cost is not None else manifest.max_cost_usd,
        cancel_on_interrupt=args.cancel_on_interrupt,
    )
    target = ApiTarget(
        base_url=SIMULATOR_URL if simulator else (args.base_url or api.base_url),
        token="simulator" if simulator else token,
        create_rpm=args.create_rpm or api.create_rpm,
        other_rpm=args.other_rpm or api.other_rpm,
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
    )
    specs = {s.id: manifest.spec_for(s.id) for s in manifest.stages}

    def jobs() -> Iterator[tuple[Any, float | None]]:
        for job in expand(manifest):
            yield job, job_cost(job, specs[job.stage])

    view = ProgressView(sys.stderr, quiet=args.quiet)
    retry_failed = bool(args.retry_failed or manifest.retry_failed)
    reseed = bool(args.reseed or manifest.reseed_failed)
    result = asyncio.run(_run(jobs(), settings, target, simulator, info, retry_failed, reseed, view))
    view.close()
    return _finish(result, out_dir, args.quiet, simulated=simulator)


async def _run(
    jobs: Iterator[tuple[Any, float | None]],
    settings: RunSettings,
    target: ApiTarget,
    simulator: bool,
    info: RunInfo,
    retry_failed: bool,
    reseed: bool,
    view: ProgressView,
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

        app = create_app(SimConfig(latency=SIMULATOR_LATENCY_S))
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
            )
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)


def _finish(session: SessionResult, out_dir: Path, quiet: bool, *, simulated: bool) -> int:
    result = session.result
    counts = ", ".join(f"{n} {status}" for status, n in sorted(session.counts.items()))
    spent = session.summary.get("cost_usd", 0.0)
    wall = session.summary.get("wall_time_s", 0.0)
    if result.fatal is not None:
        print(f"flux-batch: error: {result.fatal}", file=sys.stderr)
        print(f"flux-batch: stopped; fix that and run again to resume ({counts})", file=sys.stderr)
        return session.exit_code
    if not quiet or session.exit_code:
        what = "interrupted" if result.interrupted else "finished"
        cost = f"${spent:.2f} at API prices (simulator: nothing billed)" if simulated else f"${spent:.2f}"
        print(
            f"flux-batch: {what}: {counts} in {wall:.1f} s, {cost}; {session.images} images in "
            f"{out_dir} (manifest.csv, report.html)",
            file=sys.stderr,
        )
    if result.budget_reached:
        print("flux-batch: stopped at the budget; raise --max-cost to continue", file=sys.stderr)
    if result.stats.unfinished:
        print(
            f"flux-batch: {result.stats.unfinished} jobs hit repeated errors and are left for the next run "
            f"(see `flux-batch status {out_dir}`)",
            file=sys.stderr,
        )
    return session.exit_code


class ProgressView:
    """Progress for a human: tqdm bars on a terminal, a plain line every few seconds otherwise, or
    nothing with ``--quiet``. Notices (throttling, stopping, the budget) are printed unless quiet."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._tty = stream.isatty()
        self._bars: dict[str, Any] = {}
        self._last = 0.0
        self._last_throttle_note = 0.0

    def on_event(self, event: Event, tracker: Tracker) -> None:
        if self._quiet:
            return
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
            done = sum(by.get(s, 0) for by in counts.values() for s in _DONE)
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
            bar.close()


_DONE = ("succeeded", "failed", "canceled", "aborted", "expired", "skipped")


def _line(tracker: Tracker) -> str:
    snap = tracker.snapshot()
    eta = f"{snap.eta_s:.0f}s" if snap.eta_s is not None else "?"
    return (
        f"flux-batch: {snap.done}/{snap.total} done ({snap.succeeded} ok, {snap.failed} failed), "
        f"{snap.in_flight} in flight, ${snap.spent_usd:.2f}, {snap.rate_per_s * 60:.0f}/min, ETA {eta}"
    )
