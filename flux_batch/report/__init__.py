"""The run report: ``report.html`` (its data in ``.report/``) and one ``grid_=<stage>.png`` contact sheet
per stage.

    from flux_batch.report import write_report
    write_report(out_dir)   # after every run (an interrupted one too) and by ``flux-batch report DIR``

Everything is read back from the output folder (``manifest.csv``, ``run.json``, the images and their
thumbnails), so a report can be rebuilt at any time without the manifest or the state database.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from flux_batch.errors import storage_error
from flux_batch.layout import sheet_name
from flux_batch.report import data
from flux_batch.report.contact_sheet import sheet_cells, write_contact_sheet
from flux_batch.report.grid import GridSpec, grid_of
from flux_batch.report.html import render
from flux_batch.report.leftovers import sweep
from flux_batch.report.parts import INLINE_ROWS, PARTS_DIR, prune, write_parts
from flux_batch.report.thumbnails import ensure_thumbnail, make_thumbnail

__all__ = ["REPORT_HTML", "make_thumbnail", "write_report"]

REPORT_HTML = "report.html"


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(out_dir: Path, *, now: Callable[[], str] = _utc_now) -> Path:
    """Write ``out_dir/report.html`` (with its data parts) and the stages' contact sheets; return the
    report's path.

    Reads manifest.csv twice, a row at a time (memory stays small at any size): once to write the data
    parts and count, once to pick the rows the contact sheets show. Thumbnails the runner did not make (an
    older folder, an image it could not read then) are made here; an image that is missing or unreadable
    is shown as missing instead of breaking the report. Raises :class:`flux_batch.errors.UsageError` if
    ``out_dir`` is not an output folder, :class:`flux_batch.errors.StorageError` if it cannot be written
    (read-only, full).
    """
    out_dir = Path(out_dir)
    folder = data.Folder(out_dir)
    target = out_dir / REPORT_HTML
    tmp = target.with_name(f".{REPORT_HTML}.{os.getpid()}.tmp")
    try:
        sweep(out_dir, PARTS_DIR)
        written = write_parts(folder, lambda name: ensure_thumbnail(out_dir, name))
        grids = {s.info.id: grid_of(s.info, s.axis_values()) for s in written.stages.values()}
        for stage_id, rows in _sheet_rows(folder, grids).items():
            write_contact_sheet(out_dir, folder.stage(stage_id), grids[stage_id], rows)
        _remove_old_sheets(out_dir, folder.stages)
        try:
            tmp.write_text(render(folder, written, grids, generated_at=now()), encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        prune(out_dir, "" if written.rows <= INLINE_ROWS else written.generation)
    except OSError as exc:
        raise storage_error(exc, f"writing the report in {out_dir}") from exc
    return target


def _sheet_rows(folder: data.Folder, grids: dict[str, GridSpec]) -> dict[str, list[data.Row]]:
    """For each stage, the first row of each cell its contact sheet shows."""
    cells = {stage: sheet_cells(spec) for stage, spec in grids.items()}
    taken: dict[str, dict[tuple[str, str], data.Row]] = {stage: {} for stage in grids}
    for raw in folder.raw_rows():
        spec = grids.get(raw["stage"])
        if spec is None:
            continue
        values = folder.vars_of(raw)
        if any(values.get(k, "") != v for k, v in spec.fixed.items()):
            continue
        key = (
            values.get(spec.rows.var, "") if spec.rows else "",
            values.get(spec.cols.var, "") if spec.cols else "",
        )
        row_values, col_values = cells[raw["stage"]]
        if key[0] in row_values and key[1] in col_values and key not in taken[raw["stage"]]:
            taken[raw["stage"]][key] = folder.row(raw)
    return {stage: list(rows.values()) for stage, rows in taken.items()}


def _remove_old_sheets(out_dir: Path, stages: tuple[data.StageInfo, ...]) -> None:
    """Older versions named a sheet ``grid_<stage>.png``: a stage id with a split word in it made the
    folder a split dataset (see :mod:`flux_batch.layout`)."""
    for stage in stages:
        old = out_dir / f"grid_{stage.id}.png"
        if old.name != sheet_name(stage.id):
            old.unlink(missing_ok=True)
