"""``report.html``: one page (inline CSS and JavaScript, no network) over a run's data.

The page embeds an index as JSON in a ``<script type="application/json">`` tag (the stages, their
variables' values and default grids, the counts, the list of data parts); the rows are in the parts
under ``.report/`` (:mod:`flux_batch.report.parts`), which ``assets/report.js`` loads as it needs them,
then draws the grid, the table and the image viewer. The summary is plain HTML, readable without
JavaScript. Images, thumbnails and parts are referenced by relative path, so the page works from
``file://`` and keeps working when the whole output folder is moved or zipped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Any

from flux_batch import __version__, durations
from flux_batch.jobs.status import UNSUCCESSFUL
from flux_batch.outputs.quality import Tally, describe
from flux_batch.report.contact_sheet import sheet_path
from flux_batch.report.data import Folder
from flux_batch.report.grid import GridSpec
from flux_batch.report.parts import DETAIL_FIELDS, FIELDS, INLINE_ROWS, PARTS_DIR, StageData, Written
from flux_batch.timestamps import parse_utc

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
#: Job statuses that are not finished: a report with any of them says the run is not done.
UNFINISHED_STATUSES = frozenset({"pending", "submitted", "running"})


@cache
def _asset(name: str) -> str:
    return (resources.files("flux_batch.report") / "assets" / name).read_text(encoding="utf-8")


def payload(
    folder: Folder, written: Written, grids: Mapping[str, GridSpec], compare: str | None = None
) -> dict[str, Any]:
    """The page's index, embedded in it: the stages (their values, default grid, contact sheet, parts),
    the parts' files and the row counts by status. The rows themselves are in the parts."""
    stages = []
    for info in folder.stages:
        data = written.stages.get(info.id) or StageData(info)
        spec = grids.get(info.id)
        stages.append(
            {
                **asdict(info),
                "values": data.axis_values(),
                "rows": spec.rows.var if spec and spec.rows else None,
                "cols": spec.cols.var if spec and spec.cols else None,
                "group": spec.group.var if spec and spec.group else None,
                "fixed": dict(spec.fixed) if spec else {},
                "sheet": sheet.name if (sheet := sheet_path(folder.out_dir, info.id)).is_file() else None,
                # with a grouping axis, the sheet of each of its values (None: that value has no image)
                "sheets": [
                    sheet.name if (sheet := sheet_path(folder.out_dir, info.id, k + 1)).is_file() else None
                    for k in range(len(spec.group.values))
                ]
                if spec and spec.group
                else [],
                "count": data.rows,
                "parts": data.parts,
            }
        )
    return {
        "name": folder.name,
        "stages": stages,
        "fields": (*FIELDS, "cmp") if compare else FIELDS,
        "compare": compare,
        "detail_fields": DETAIL_FIELDS,
        "dir": f"{PARTS_DIR}/{written.generation}/",
        "parts": written.parts,
        "rows": written.rows,
        "row_counts": written.row_counts,
    }


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, no ``<!--`` can end or confuse it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(
    folder: Folder,
    written: Written,
    grids: Mapping[str, GridSpec],
    *,
    generated_at: str,
    compare: str | None = None,
) -> str:
    """The whole page as text."""
    manifest_path = folder.run.get("manifest", {}).get("path", "")
    meta = f"generated {generated_at} by flux-batch {__version__}"
    if manifest_path:
        meta = f"{manifest_path} · {meta}"
    parts = {
        "version": html.escape(__version__),
        "title": html.escape(folder.name),
        "meta": html.escape(meta),
        "summary": summary_html(folder.summary, written),
        "css": _asset("report.css"),
        "js": _asset("report.js"),
        "data": script_json(payload(folder, written, grids, compare)),
        "parts": _inline_parts(folder, written) if written.rows <= INLINE_ROWS else "",
    }
    # One pass over the template: text put in is never scanned again for placeholders.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _asset("report.html"))


def _inline_parts(folder: Folder, written: Written) -> str:
    """The parts' scripts, to put in the page (their text is safe inside a script element)."""
    root = folder.out_dir / PARTS_DIR / written.generation
    return "".join(
        f"<script>{(root / part[key]).read_text(encoding='utf-8')}</script>\n"
        for part in written.parts
        for key in ("src", "detail")
    )


def summary_html(summary: Mapping[str, Any], written: Written) -> str:
    """The cards and status chips at the top of the page. Counts are the table's (manifest.csv as read);
    the spend, times and calls come from run.json's summary."""
    counts = written.status_counts()
    jobs = len(written.job_status)
    failed = sum(n for status, n in counts.items() if status in UNSUCCESSFUL)
    cost = summary.get("cost_usd")
    if cost is None:
        cost = written.cost_usd
    rate = summary.get("create_rate_per_min")
    calls = summary.get("api_calls") or {}
    cards = [
        _card("Images", f"{written.images:,}", f"from {_plural(jobs, 'job')}"),
        _card("Succeeded", f"{counts.get('succeeded', 0):,}", _percent(counts.get("succeeded", 0), jobs)),
        _card("Failed", f"{failed:,}", "failed, canceled, expired, skipped, not downloaded", bad=failed > 0),
        _flagged_card(written.tally),
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
    cards_html = f'<section id="summary" class="cards">{"".join(cards)}</section>'
    return f'{_banner(summary, counts)}{cards_html}\n<div class="chips">{chips}</div>'


def _banner(summary: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    """Says when the run is not done: jobs left unfinished, an interruption, a stop, or a run that never
    wrote its end (still running, or killed)."""
    left = sum(n for status, n in counts.items() if status in UNFINISHED_STATUSES)
    if summary.get("interrupted"):
        why = "was interrupted"
    elif summary.get("stopped"):
        why = f"stopped ({summary['stopped']})"
    elif summary and not summary.get("finished_at"):
        why = "has not finished (it is still running, or was killed)"
    elif left:
        why = "has not finished"
    else:
        return ""
    jobs = f": {_plural(left, 'job')} not done" if left else ""
    return (
        f'<p class="banner" id="unfinished">This run {html.escape(why)}{jobs}. Run the same '
        "<code>flux-batch run</code> command again to resume it; nothing done is redone.</p>\n"
    )


def _flagged_card(tally: Tally) -> str:
    """Bad samples (blank, undecodable, wrong size) and near-duplicates, which exports leave out."""
    sub = describe(tally.summary()) or "no blank, undecodable or wrong-size image"
    return _card("Flagged", f"{tally.flagged:,}", sub, bad=tally.flagged > 0)


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
    start, end = parse_utc(summary.get("started_at")), parse_utc(summary.get("finished_at"))
    if start is None:
        return ""
    first = start.strftime("%Y-%m-%d %H:%M:%S")
    if end is None:
        return f"started {first} UTC"
    last = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
    return f"{first} → {last} UTC"


def format_duration(seconds: Any) -> str:
    """``83.4`` -> ``"1 min 23 s"``; ``3725`` -> ``"1 h 2 min"``; ``None`` -> ``"–"``."""
    return durations.format_duration(seconds, words=True, unknown="–")
