"""``flux-batch run MANIFEST`` and ``flux-batch status DIR``: thin commands over :mod:`flux_batch.api`.

The library decides; this module reads flags, asks the questions a run has (on a terminal), and draws
progress (tqdm bars on a terminal, a plain line every few seconds otherwise) and the last lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from flux_batch import api, defaults
from flux_batch.cli import run_options as options
from flux_batch.cli.progress_view import ProgressView
from flux_batch.errors import EXIT_OK
from flux_batch.outputs.quality import describe as describe_flags
from flux_batch.runner.prepare import host_question
from flux_batch.runner.status import render


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
    status = api.status(args.dir)
    print(json.dumps(status.to_json(), indent=2) if args.json else render(status))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    manifest = api.load(args.manifest, max_jobs=args.max_jobs, resume=args.out or True)
    choices = {k: getattr(args, k) for k in CHOICES}
    prepared = api.prepare_run(manifest, **choices, simulator=True if args.simulator else None)
    say = _teller(args.quiet)
    for note in prepared.notes:
        say(note)
    if args.yes and any(kind == "host" for kind, _ in prepared.questions):
        print(f"flux-batch: {host_question(prepared.manifest.api)} (--yes)", file=sys.stderr)
    try:
        api.confirm(prepared, yes=args.yes, ask=_ask if sys.stdin.isatty() else None)
    except api.Declined:
        print("flux-batch: nothing submitted", file=sys.stderr)
        return EXIT_OK
    view = ProgressView(sys.stderr, quiet=args.quiet)
    result = asyncio.run(api.execute(prepared, on_event=view.on_event, handle_signals=True))
    view.close()
    return _finish(result, args.quiet)


#: ``run``'s flags that are :class:`flux_batch.runner.prepare.RunChoices` fields.
CHOICES = (
    "out",
    "no_simulator",
    "base_url",
    "create_rpm",
    "other_rpm",
    "max_in_flight",
    "wait",
    "max_cost",
    "up_to_budget",
    "retry_failed",
    "reseed",
    "switch_manifest",
    "cancel_on_interrupt",
)


def _ask(question: str) -> bool:
    if question.startswith("the manifest sends"):
        question = f"flux-batch: {question}. Send it there?"
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _teller(quiet: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr)

    return say


def _finish(result: api.RunResult, quiet: bool) -> int:
    """The last lines: what this run did and cost, then where the folder stands (all runs)."""
    out_dir = result.out_dir
    this_run = ", ".join(f"{n:,} {status}" for status, n in sorted(result.this_run.items()) if n)
    this_run = this_run or "no job ended"
    prices = " at API prices (simulator: nothing billed)" if result.simulated else ""
    recreated = result.recreated
    again = f"; {recreated} created again as the API no longer had their output" if recreated else ""
    total = sum(result.counts.values())
    folder = ", ".join(f"{n:,} {status}" for status, n in sorted(result.counts.items()))
    flagged = describe_flags(result.summary)
    flagged = f" ({flagged})" if flagged else ""
    folder_line = (
        f"flux-batch: {out_dir}: {folder} of {total:,} jobs, {result.images:,} images{flagged}; "
        f"${result.spent_usd:,.2f}{prices} spent there in all (manifest.csv, report.html)"
    )
    if result.error is not None:
        print(f"flux-batch: error: {result.error}", file=sys.stderr)
        stopped = f"flux-batch: stopped; this run: {this_run}{again}; fix that and run again to resume"
        print(stopped, file=sys.stderr)
        print(folder_line, file=sys.stderr)
        return result.exit_code
    if not quiet or result.exit_code:
        what = "interrupted" if result.interrupted else "finished"
        print(
            f"flux-batch: {what} in {result.wall_time_s:.1f} s; this run: {this_run}, "
            f"${result.cost_usd:,.2f}{prices}{again}",
            file=sys.stderr,
        )
        print(folder_line, file=sys.stderr)
    if result.budget_reached:
        print(
            "flux-batch: stopped taking new jobs at the cost cap; raise --max-cost (or max_cost_usd) and "
            "run again to continue",
            file=sys.stderr,
        )
    if result.unfinished:
        print(
            f"flux-batch: {result.unfinished} jobs hit repeated errors and are left for the next run "
            f"(see `flux-batch status {out_dir}`)",
            file=sys.stderr,
        )
    if result.failed and not result.interrupted:
        print(
            f"flux-batch: {result.failed:,} jobs failed (see `flux-batch status {out_dir}`): run again with "
            "--retry-failed to retry them",
            file=sys.stderr,
        )
    return result.exit_code
