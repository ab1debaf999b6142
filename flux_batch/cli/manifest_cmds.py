"""``flux-batch validate`` and ``plan``: thin commands over the manifest library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flux_batch.api import load
from flux_batch.cli.run_options import whole_number
from flux_batch.durations import format_duration
from flux_batch.errors import EXIT_INVALID, EXIT_OK, ManifestError
from flux_batch.jobs.expand import count_jobs, expand
from flux_batch.jobs.plan import Plan, build_plan
from flux_batch.jobs.status import FAILED
from flux_batch.manifest import Manifest
from flux_batch.manifest.api_url import is_loopback, is_replicate
from flux_batch.manifest.template import format_value
from flux_batch.runner.folder import read_folder
from flux_batch.runner.prepare import budget_figures, exact_money, read_token


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``validate`` and ``plan`` subcommands."""
    p = sub.add_parser("validate", help="check manifests; print every error with file:line:column")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument(
        "--max-jobs",
        type=whole_number(1),
        help="raise (or lower) the job limit (default: the manifest's, 1,000,000)",
    )
    p.add_argument(
        "--fetch",
        action="store_true",
        help="first fetch the schema of every model without one from the manifest's API (token needed)",
    )
    p.set_defaults(func=validate_command)

    p = sub.add_parser("plan", help="show jobs, cost and time per stage without running anything")
    p.add_argument("manifest", metavar="MANIFEST")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    out.add_argument("--jobs", action="store_true", help="print every job as JSON Lines")
    p.add_argument("--max-jobs", type=whole_number(1), help="raise (or lower) the job limit")
    p.add_argument("--out", help="output folder to count finished jobs in (default: the manifest's)")
    p.set_defaults(func=plan_command)


def validate_command(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for path in args.manifests:
        try:
            manifest = load(path, max_jobs=args.max_jobs)
            if args.fetch and _fetch_models(manifest):
                manifest = load(path, max_jobs=args.max_jobs)
        except ManifestError as err:
            print(err.render_all(), file=sys.stderr)
            code = EXIT_INVALID
            continue
        for warning in manifest.warnings:
            print(warning.render(), file=sys.stderr)
        counts = count_jobs(manifest)
        print(
            f"{path}: ok: {manifest.name}, {len(manifest.stages)} stage(s), {sum(counts.values()):,} job(s)"
        )
    return code


def _fetch_models(manifest: Manifest) -> bool:
    import httpx

    from flux_batch.runner.model_fetch import fetch_unknown

    if manifest.api.simulator:
        return False
    token = read_token(manifest.api.token_env, os.environ)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    return fetch_unknown(manifest, httpx.AsyncClient(), manifest.api.base_url, token, say)


def plan_command(args: argparse.Namespace) -> int:
    manifest = load(args.manifest, max_jobs=args.max_jobs)
    out = sys.stdout
    if args.jobs:
        for job in expand(manifest):
            out.write(json.dumps(job.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        return EXIT_OK
    for warning in manifest.warnings:
        print(warning.render(), file=sys.stderr)
    out_dir = Path(args.out) if args.out else manifest.output
    folder = read_folder(out_dir, manifest)
    if folder.owner and folder.owner.get("name") not in (None, manifest.name):
        print(
            f"flux-batch: note: {out_dir} holds the run of another manifest, {folder.owner['name']!r}: "
            "`run` refuses it without --switch-manifest",
            file=sys.stderr,
        )
    plan = build_plan(
        manifest,
        done=folder.done,
        spent_usd=folder.spent_usd,
        retry_failed=manifest.retry_failed,
        output=str(out_dir),
    )
    if args.json:
        print(json.dumps(plan.to_json(), ensure_ascii=False, indent=2))
    else:
        print(render_plan(plan))
    return EXIT_OK


def _money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def render_plan(plan: Plan) -> str:
    """The human plan: where it runs, a table per stage, totals, what is left to do, budget, samples."""
    rows = [("stage", "model", "jobs", "images", "cost", "time")]
    for s in plan.stages:
        shown = s.model if len(s.models) < 2 else f"{len(s.models)} models:"
        rows.append(
            (s.id, shown, f"{s.jobs:,}", f"{s.images:,}", _money(s.cost_usd), format_duration(s.time_s))
        )
        if len(s.models) > 1:
            for m in s.models:
                rows.append(
                    (
                        "",
                        f"  {m.model}",
                        f"{m.jobs:,}",
                        f"{m.images:,}",
                        _money(m.cost_usd),
                        format_duration(m.time_s),
                    )
                )
    total_cost = _money(plan.cost_usd) + ("" if plan.cost_complete else " + unpriced")
    rows.append(("total", "", f"{plan.jobs:,}", f"{plan.images:,}", total_cost, format_duration(plan.time_s)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [f"{plan.name} ({plan.manifest}) -> {plan.output}", f"  {_api(plan)}"]
    for r in rows:
        cells = [r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i]) for i in range(6)]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.append(f"  time: {_time_basis(plan)}")
    prices = {m.model: m.price for s in plan.stages for m in s.models if m.price}
    by_size = {k: v for k, v in prices.items() if "MP" in v}
    for model, price in by_size.items():
        lines.append(f"  {model}: {price} (input images counted as 1 MP each; an estimate)")
    done = False
    for s in plan.stages:
        if s.done:
            done = True
            shown = ", ".join(f"{k} {v:,}" for k, v in sorted(s.done.items()))
            lines.append(f"  already in {plan.output} for {s.id}: {shown}")
    if done:
        left = sum((s.done or {}).get(k, 0) for s in plan.stages for k in FAILED)
        note = f" ({left:,} failed jobs left as they are: `run --retry-failed` retries them)" if left else ""
        lines.append(
            f"  to do: {plan.todo_jobs:,} of {plan.jobs:,} jobs, {_money(plan.todo_cost_usd)}, "
            f"{format_duration(plan.todo_time_s)}{note}"
        )
    if plan.max_cost_usd is not None:
        lines.append(f"  {_budget(plan)}")
    if plan.samples:
        lines.append("sample jobs:")
        for job in plan.samples:
            vars = " ".join(f"{k}={format_value(v)}" for k, v in job.vars.items())
            lines.append(f"  {job.stage} {job.id} seed={job.seed} {vars}".rstrip())
            lines.append(f"    {job.prompt[:100]!r}")
    return "\n".join(lines)


def _time_basis(plan: Plan) -> str:
    """What the times assume: the rate, each model's typical prediction time, the in-flight ceiling."""
    typical = {m.model: m for s in plan.stages for m in s.models}
    times = ", ".join(
        f"{name.rpartition('/')[2]} {format_duration(m.predict_s)}"
        + ("" if m.predict_known else " (unknown)")
        for name, m in typical.items()
    )
    return (
        f"{plan.create_rpm:g} creates a minute (api.create_rpm), at most {plan.max_in_flight:,} in flight "
        f"(api.max_in_flight), typical predictions {times}; stages back to back"
    )


def _api(plan: Plan) -> str:
    api = plan.api
    if api.get("simulator"):
        return "API: the built-in simulator (api.simulator: free, no token, nothing billed)"
    url = str(api["base_url"])
    line = f"API: {url} (token from ${api['token_env']})"
    if not (is_replicate(url) or is_loopback(url)):
        line += "; not Replicate's API: `run` asks before sending the token there"
    return line


def _budget(plan: Plan) -> str:
    cap = exact_money(plan.max_cost_usd or 0.0)
    if plan.over_budget:
        return (
            f"max_cost_usd {cap}: {budget_figures(plan)}, OVER the limit: `run` refuses to start (raise the "
            "limit, or run until it with --up-to-budget)"
        )
    return f"max_cost_usd {cap}: {budget_figures(plan)}, within the limit"
