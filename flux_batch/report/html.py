"""``report.html``: one self-contained page (inline CSS and JavaScript, no network) over a run's data.

The job data goes into the page as JSON in a ``<script type="application/json">`` tag, column-wise (a
list of field names, then one list of values per row) to keep 10,000 rows small; ``assets/report.js``
draws the grid, the table and the image viewer from it. The summary is plain HTML, readable without
JavaScript. Images and thumbnails are referenced by relative path, so the page works from ``file://``
and keeps working when the whole output folder is moved or zipped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any

from flux_batch import __version__
from flux_batch.report.contact_sheet import sheet_path
from flux_batch.report.data import FAILED_STATUSES, Row, RunData
from flux_batch.report.grid import all_axis_values, default_grid
from flux_batch.report.repro import one_job_manifest

#: The per-row fields the page's script reads, in the order each row's values are embedded. The prompt
#: and seed are read from ``input``, the model from the stage: nothing is embedded twice.
FIELDS = (
    "job_id", "stage", "status", "vars", "input", "image_inputs", "upstream_job_id", "file_name", "thumb",
    "width", "height", "predict_time", "cost_usd", "attempts", "prediction_id", "created_at",
    "completed_at", "error", "manifest",
)  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@cache
def _asset(name: str) -> str:
    return (resources.files("flux_batch.report") / "assets" / name).read_text(encoding="utf-8")


def payload(run: RunData) -> dict[str, Any]:
    """Everything the page's script needs, as JSON-able data."""
    stages = []
    for stage in run.stages:
        rows = run.stage_rows(stage.id)
        spec = default_grid(stage, rows)
        stages.append(
            {
                **asdict(stage),
                "values": all_axis_values(stage, rows),
                "rows": spec.rows.var if spec.rows else None,
                "cols": spec.cols.var if spec.cols else None,
                "fixed": dict(spec.fixed),
                "sheet": sheet.name if (sheet := sheet_path(run.out_dir, stage.id)).is_file() else None,
            }
        )
    return {
        "name": run.name,
        "stages": stages,
        "fields": FIELDS,
        "rows": [_values(row, run.name) for row in run.rows],
    }


def _values(row: Row, run_name: str) -> list[Any]:
    extra = {"image_inputs": list(row.image_inputs), "manifest": one_job_manifest(row, run_name=run_name)}
    return [extra[f] if f in extra else getattr(row, f) for f in FIELDS]


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, no ``<!--`` can end or confuse it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(run: RunData, *, generated_at: str) -> str:
    """The whole page as text."""
    manifest_path = run.run.get("manifest", {}).get("path", "")
    meta = f"generated {generated_at} by flux-batch {__version__}"
    if manifest_path:
        meta = f"{manifest_path} · {meta}"
    parts = {
        "version": html.escape(__version__),
        "title": html.escape(run.name),
        "meta": html.escape(meta),
        "summary": summary_html(run),
        "css": _asset("report.css"),
        "js": _asset("report.js"),
        "data": script_json(payload(run)),
    }
    # One pass over the template: text put in is never scanned again for placeholders.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _asset("report.html"))


def summary_html(run: RunData) -> str:
    """The cards and status chips at the top of the page."""
    summary = run.summary
    counts: Mapping[str, int] = summary.get("counts") or _count_jobs(run)
    jobs = summary.get("jobs", sum(counts.values()))
    images = summary.get("images", sum(1 for r in run.rows if r.status == "succeeded"))
    failed = sum(n for status, n in counts.items() if status in FAILED_STATUSES)
    cost = summary.get("cost_usd")
    if cost is None:
        cost = sum(r.cost_usd or 0.0 for r in run.rows)
    rate = summary.get("create_rate_per_min")
    calls = summary.get("api_calls") or {}
    cards = [
        _card("Images", f"{images:,}", f"from {_plural(jobs, 'job')}"),
        _card("Succeeded", f"{counts.get('succeeded', 0):,}", _percent(counts.get("succeeded", 0), jobs)),
        _card("Failed", f"{failed:,}", "failed, canceled, expired, skipped, not downloaded", bad=failed > 0),
        _card("Cost", f"${cost:,.2f}", "estimated from model prices"),
        _card("Wall time", format_duration(summary.get("wall_time_s")), _span(summary)),
        _card(
            "Create rate",
            f"{rate:,.0f}/min" if isinstance(rate, (int, float)) else "–",
            f"{_plural(calls.get('create', 0), 'create')} · {summary.get('throttled_429', 0):,} × 429 · "
            f"{_plural(summary.get('retries', 0), 'retry', 'retries')}",
        ),
    ]
    chips = "".join(
        f'<span class="chip {html.escape(status)}">{html.escape(status)} {n:,}</span>'
        for status, n in sorted(counts.items(), key=lambda kv: (kv[0] != "succeeded", kv[0]))
    )
    banner = ""
    if run.summary and not summary.get("finished_at"):
        banner = (
            '<p class="banner" id="unfinished">This run has not finished (it was interrupted or is still '
            "running). Run the same <code>flux-batch run</code> command again to resume it; nothing done "
            "is redone.</p>\n"
        )
    cards_html = f'<section id="summary" class="cards">{"".join(cards)}</section>'
    return f'{banner}{cards_html}\n<div class="chips">{chips}</div>'


def _count_jobs(run: RunData) -> dict[str, int]:
    status_by_job = {r.job_id: r.status for r in run.rows}
    counts: dict[str, int] = {}
    for status in status_by_job.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def _card(label: str, value: str, sub: str = "", *, bad: bool = False) -> str:
    cls = "card bad" if bad else "card"
    return (
        f'<div class="{cls}"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div><div class="sub">{html.escape(sub)}</div></div>'
    )


def _plural(count: int, one: str, many: str = "") -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _percent(part: int, whole: int) -> str:
    """Rounded down, so 9,996 of 10,000 never reads as 100%."""
    return f"{100 * part // whole}% of jobs" if whole else ""


def _span(summary: Mapping[str, Any]) -> str:
    """``2025-01-01 10:00:00 → 10:01:23 UTC`` (the date once when both ends share it)."""
    start, end = _parse_time(summary.get("started_at")), _parse_time(summary.get("finished_at"))
    if start is None:
        return ""
    first = start.strftime("%Y-%m-%d %H:%M:%S")
    if end is None:
        return f"started {first} UTC"
    last = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
    return f"{first} → {last} UTC"


def _parse_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment


def format_duration(seconds: Any) -> str:
    """``83.4`` -> ``"1 min 23 s"``; ``3725`` -> ``"1 h 2 min"``; ``None`` -> ``"–"``."""
    if not isinstance(seconds, (int, float)):
        return "–"
    total = round(seconds)
    if total < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
