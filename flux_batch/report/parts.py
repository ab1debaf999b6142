"""The report's job data, written in parts beside the page: ``.report/<generation>/p<k>.js`` and ``d<k>.js``.

One page holding every row of a big run was 101 MB for 100,000 images and took Chromium 226 MB of heap to
open. So the rows go into small script files of :data:`PART_ROWS` rows each, one stage per part, that the
page loads with ``<script src>`` when it needs them (the stage on screen, the table, the image viewer):
``fetch()`` of a local file is refused under ``file://``; a script tag is not. Each ``p<k>.js`` holds
what the grid and the table need (:data:`FIELDS`); its ``d<k>.js`` what only the viewer shows
(:data:`DETAIL_FIELDS`, the one-job manifest above all).

Rows are read from ``manifest.csv`` one at a time and written out as they come, so memory stays small
whatever the folder's size; what is kept is per stage (its variables' values, its parts) and per job (its
status, for the counts). A generation is named by the hash of its content, so the same folder gives the
same page, and a page already open keeps loading the parts it was written with until the next report
removes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_batch.outputs.layout import IMAGES_DIR
from flux_batch.outputs.quality import Tally
from flux_batch.report.data import Folder, Row, StageInfo, in_display_order
from flux_batch.report.repro import one_job_manifest
from flux_batch.report.thumbnails import thumb_path_for

#: Where the parts live, relative to the output folder (a dot-folder: dataset loaders skip it).
PARTS_DIR = ".report"
#: Rows per part: about 0.5 MB of script, parsed in a few milliseconds.
PART_ROWS = 2000
#: Up to this many rows, the parts go into the page itself: one file to share, every view drawn at once.
INLINE_ROWS = 5000
#: The per-row fields of a ``p<k>.js`` part, in the order of each row's values. Prompt and seed are read
#: from ``input``, the model from the stage; ``up_thumb`` is the thumbnail of a chain job's upstream image;
#: ``flags`` an image's bad-sample flags, or ``near_duplicate``
#: (see :class:`flux_batch.outputs.quality.Tally`).
FIELDS = (
    "job_id", "stage", "status", "vars", "input", "image_inputs", "upstream_job_id", "up_thumb",
    "file_name", "thumb", "width", "height", "predict_time", "cost_usd", "attempts", "error", "flags",
)  # fmt: skip
DETAIL_FIELDS = ("prediction_id", "created_at", "completed_at", "manifest", "phash")


@dataclass
class StageData:
    """One stage as the rows showed it."""

    info: StageInfo
    rows: int = 0
    values: dict[str, dict[str, None]] = field(default_factory=dict)  # variable -> values, as first seen
    parts: list[int] = field(default_factory=list)

    def axis_values(self) -> dict[str, list[str]]:
        return {var: in_display_order(self.values.get(var, {})) for var in self.info.vars}


@dataclass
class Written:
    """What :func:`write_parts` wrote and counted: the parts (``src``, ``detail``, ``stage``, ``rows``, and
    the number of its first row in all, ``base``, and in its stage, ``offset``), the stages, and each job's
    status (from its first row)."""

    generation: str
    parts: list[dict[str, Any]]
    stages: dict[str, StageData]
    job_status: dict[str, str]
    rows: int = 0
    images: int = 0
    cost_usd: float = 0.0
    #: Rows by the status the page shows ("missing" for a succeeded row whose image cannot be read).
    row_counts: dict[str, int] = field(default_factory=dict)
    #: The images' bad-sample flags and near-duplicates, counted from the table's rows.
    tally: Tally = field(default_factory=Tally)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.job_status.values():
            counts[status] = counts.get(status, 0) + 1
        return counts


def part_js(call: str, k: int, rows: Iterable[list[Any]]) -> str:
    """A part's script: one call with its index and rows, as JSON safe in any script context."""
    body = json.dumps(list(rows), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    body = body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("<", "\\u003c")
    return f"fluxReport.{call}({k},{body});\n"


def write_parts(
    folder: Folder,
    rows: Iterable[tuple[Row, str | None]],
    compare: Callable[[Row], str] | None = None,
) -> Written:
    """Stream ``folder``'s ``rows``, each with its thumbnail's path (None when the image cannot be read,
    :func:`flux_batch.report.thumbnails.with_thumbnails`), into a new generation under ``.report/``. With
    ``compare``, each row also gets ``cmp``: the path of another run's image for the same variables
    (:mod:`flux_batch.report.compare`), or ""."""
    root = folder.out_dir / PARTS_DIR
    staging = root / f".tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = Written("", [], {}, {})
    pending: dict[str, tuple[list[list[Any]], list[list[Any]]]] = {}
    digest = hashlib.sha256()

    def flush(stage: str) -> None:
        light, detail = pending.pop(stage)
        k = len(written.parts)
        for name, call, rows in ((f"p{k}.js", "part", light), (f"d{k}.js", "detail", detail)):
            text = part_js(call, k, rows).encode("utf-8")
            digest.update(text)
            (staging / name).write_bytes(text)
        written.parts.append({"src": f"p{k}.js", "detail": f"d{k}.js", "stage": stage, "rows": len(light)})
        written.stages[stage].parts.append(k)

    for row, thumb in rows:
        data = written.stages.get(row.stage)
        if data is None:
            data = written.stages[row.stage] = StageData(folder.stage(row.stage))
        data.rows += 1
        for var in data.info.vars:
            data.values.setdefault(var, {}).setdefault(row.vars.get(var, ""), None)
        written.job_status.setdefault(row.job_id, row.status)
        written.rows += 1
        labels: tuple[str, ...] = ()
        if row.status == "succeeded" and row.file_name:
            written.images += 1
            labels = written.tally.add(row.flags, row.phash)
        label = "missing" if row.status == "succeeded" and not thumb else row.status
        written.row_counts[label] = written.row_counts.get(label, 0) + 1
        written.cost_usd += row.cost_usd or 0.0
        light, detail = pending.setdefault(row.stage, ([], []))
        light.append(_light(row, thumb or "", labels) + ([compare(row)] if compare else []))
        detail.append(_detail(row, folder.name))
        if len(light) >= PART_ROWS:
            flush(row.stage)
    for stage in list(pending):
        flush(stage)
    base, offsets = 0, dict.fromkeys(written.stages, 0)
    for part in written.parts:  # rows are numbered in all (base) and in their stage (offset)
        part["base"], part["offset"] = base, offsets[part["stage"]]
        base += part["rows"]
        offsets[part["stage"]] += part["rows"]
    written.generation = digest.hexdigest()[:16]
    try:
        staging.rename(root / written.generation)
    except OSError:
        if not (root / written.generation).is_dir():
            raise
        shutil.rmtree(staging)  # the same content is there already (an earlier or concurrent report)
    return written


def prune(out_dir: Path, keep: str) -> None:
    """Remove the generations other than ``keep`` (older reports' parts)."""
    root = Path(out_dir) / PARTS_DIR
    for entry in root.iterdir() if root.is_dir() else ():
        if entry.is_dir() and entry.name != keep and not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)


def _light(row: Row, thumb: str, labels: tuple[str, ...]) -> list[Any]:
    upstream = next((p for p in row.image_inputs.values() if p.startswith(f"{IMAGES_DIR}/")), "")
    extra = {
        "image_inputs": list(row.image_inputs),
        "up_thumb": thumb_path_for(upstream) if upstream else "",
        "thumb": thumb,
        "flags": ";".join(labels),
    }
    return [extra[f] if f in extra else getattr(row, f) for f in FIELDS]


def _detail(row: Row, run_name: str) -> list[Any]:
    manifest = one_job_manifest(row, run_name=run_name)
    return [manifest if f == "manifest" else getattr(row, f) for f in DETAIL_FIELDS]
