"""The run report: ``report.html`` (its data in ``.report/``) and one ``grid_=<stage>.png`` contact sheet
per stage.

    from flux_batch.report import write_report
    write_report(out_dir)   # after every run (an interrupted one too) and by ``flux-batch report DIR``

Everything is read back from the output folder (``manifest.csv``, ``run.json``, the images and their
thumbnails), so a report can be rebuilt at any time without the manifest or the state database.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from flux_batch.errors import storage_error
from flux_batch.outputs.layout import sheet_name
from flux_batch.report import data
from flux_batch.report.compare import Comparison
from flux_batch.report.contact_sheet import sheet_cells, sheet_path, write_contact_sheet
from flux_batch.report.grid import GridSpec, Layout, grid_of
from flux_batch.report.html import render
from flux_batch.report.leftovers import sweep
from flux_batch.report.parts import INLINE_ROWS, PARTS_DIR, prune, write_parts
from flux_batch.report.thumbnails import make_thumbnail, with_thumbnails

__all__ = ["REPORT_HTML", "Layout", "make_thumbnail", "write_report"]

REPORT_HTML = "report.html"


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(
    out_dir: Path,
    *,
    now: Callable[[], str] = _utc_now,
    layout: Layout | None = None,
    save: bool = False,
    compare: Path | None = None,
    make_missing: bool = True,
) -> Path:
    """Write ``out_dir/report.html`` (with its data parts) and the stages' contact sheets; return the
    report's path.

    Reads manifest.csv twice, a row at a time (memory stays small at any size): once to write the data
    parts and count, once to pick the rows the contact sheets show. Thumbnails and quality values the
    runner did not make (a killed run, an older folder) are made here, on every core; an image that is
    missing or unreadable is shown as missing instead of breaking the report. Raises
    :class:`flux_batch.errors.UsageError` if ``out_dir`` is not an output folder,
    :class:`flux_batch.errors.StorageError` if it cannot be written (read-only, full).

    ``layout``: the variables to put on rows, columns and the grouping axis of every stage that has them
    (one contact sheet per value of the grouping axis); with ``save``, it is kept in the folder and used
    by the next reports (the runner's too). Without it, the layout kept, if any. ``compare``: another
    output folder whose images for the same variables are shown beside this one's
    (:mod:`flux_batch.report.compare`). ``make_missing=False`` (a run that was stopped, whose user is
    waiting for it to exit) makes no thumbnail or quality value: an image without a thumbnail is shown
    at full size, and the next report makes them.
    """
    out_dir = Path(out_dir)
    folder = data.Folder(out_dir)
    if save and layout is not None:
        save_layout(out_dir, layout)
    layout = layout or saved_layout(out_dir)
    target = out_dir / REPORT_HTML
    tmp = target.with_name(f".{REPORT_HTML}.{os.getpid()}.tmp")
    try:
        sweep(out_dir, PARTS_DIR)
        other = Comparison(folder, data.Folder(compare)) if compare is not None else None
        written = write_parts(folder, with_thumbnails(folder, make=make_missing), other)
        grids = {s.info.id: grid_of(s.info, s.axis_values(), layout) for s in written.stages.values()}
        _remove_old_sheets(out_dir, folder.stages)
        for stage_id, spec in grids.items():  # a grouped stage has a sheet per value, none of its own
            if spec.group:
                sheet_path(out_dir, stage_id).unlink(missing_ok=True)
        for (stage_id, k), (spec, rows) in _sheet_rows(folder, grids).items():
            write_contact_sheet(out_dir, folder.stage(stage_id), spec, rows, k)
        try:
            page = render(folder, written, grids, generated_at=now(), compare=other.label if other else None)
            tmp.write_text(page, encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        prune(out_dir, "" if written.rows <= INLINE_ROWS else written.generation)
    except OSError as exc:
        raise storage_error(exc, f"writing the report in {out_dir}") from exc
    return target


def _sheet_rows(
    folder: data.Folder, grids: dict[str, GridSpec]
) -> dict[tuple[str, int], tuple[GridSpec, list[data.Row]]]:
    """For each sheet, ``(stage, k)`` (k: the grouping axis's k-th value, 0 without one), its grid and the
    first row of each cell it shows."""
    sheets: dict[str, dict[str, tuple[int, GridSpec]]] = {
        stage: {value: (k + 1 if spec.group else 0, sub) for k, (value, sub) in enumerate(spec.groups())}
        for stage, spec in grids.items()
    }
    cells = {stage: sheet_cells(spec) for stage, spec in grids.items()}
    taken: dict[tuple[str, int], dict[tuple[str, str], data.Row]] = {}
    for raw in folder.raw_rows():
        spec = grids.get(raw["stage"])
        if spec is None:
            continue
        values = folder.vars_of(raw)
        found = sheets[raw["stage"]].get(values.get(spec.group.var, "") if spec.group else "")
        if found is None or any(values.get(k, "") != v for k, v in found[1].fixed.items()):
            continue
        key = (
            values.get(spec.rows.var, "") if spec.rows else "",
            values.get(spec.cols.var, "") if spec.cols else "",
        )
        row_values, col_values = cells[raw["stage"]]
        mine = taken.setdefault((raw["stage"], found[0]), {})
        if key[0] in row_values and key[1] in col_values and key not in mine:
            mine[key] = folder.row(raw)
    return {
        (stage, k): (sub, list(taken.get((stage, k), {}).values()))
        for stage, by_value in sheets.items()
        for k, sub in by_value.values()
    }


def _remove_old_sheets(out_dir: Path, stages: tuple[data.StageInfo, ...]) -> None:
    """The sheets of an earlier layout's grouping axis (``grid_=<stage>.<k>.png``), and older versions'
    ``grid_<stage>.png``: a stage id with a split word in it made the folder a split dataset (see
    :mod:`flux_batch.outputs.layout`)."""
    for stage in stages:
        old = out_dir / f"grid_{stage.id}.png"
        if old.name != sheet_name(stage.id):
            old.unlink(missing_ok=True)
        for grouped in out_dir.glob(glob.escape(sheet_name(stage.id)[: -len(".png")]) + ".*.png"):
            grouped.unlink(missing_ok=True)


#: The layout a reader chose with ``flux-batch report --rows/--cols/--group``, kept for the next reports.
LAYOUT_FILE = "layout.json"


def save_layout(out_dir: Path, layout: Layout) -> None:
    path = out_dir / PARTS_DIR / LAYOUT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == Layout():
        path.unlink(missing_ok=True)
        return
    path.write_text(json.dumps(asdict(layout)), encoding="utf-8")


def saved_layout(out_dir: Path) -> Layout | None:
    try:
        data_ = json.loads((out_dir / PARTS_DIR / LAYOUT_FILE).read_text(encoding="utf-8"))
        return Layout(
            **{k: data_.get(k) if isinstance(data_.get(k), str) else None for k in ("rows", "cols", "group")}
        )
    except (OSError, ValueError, AttributeError):
        return None
