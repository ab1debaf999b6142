"""The run report: ``report.html`` and one ``grid_<stage>.png`` contact sheet per stage.

    from flux_batch.report import write_report
    write_report(out_dir)   # after every run (an interrupted one too) and by ``flux-batch report DIR``

Everything is read back from the output folder (``manifest.csv``, ``run.json``, the images and their
thumbnails), so a report can be rebuilt at any time without the manifest or the state database.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from flux_batch.errors import storage_error
from flux_batch.report import data
from flux_batch.report.contact_sheet import write_contact_sheet
from flux_batch.report.html import render
from flux_batch.report.thumbnails import ensure_thumbnail, make_thumbnail

__all__ = ["REPORT_HTML", "make_thumbnail", "write_report"]

REPORT_HTML = "report.html"


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(out_dir: Path, *, now: Callable[[], str] = _utc_now) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/grid_<stage>.png``; return the report's path.

    Thumbnails the runner did not make (an older folder, an image it could not read then) are made here;
    an image that is missing or unreadable is shown as missing instead of breaking the report. Raises
    :class:`flux_batch.errors.UsageError` if ``out_dir`` is not an output folder,
    :class:`flux_batch.errors.StorageError` if it cannot be written (read-only, full).
    """
    out_dir = Path(out_dir)
    run = data.load(out_dir)
    run = dataclasses.replace(run, rows=tuple(_with_thumbnail(out_dir, row) for row in run.rows))
    target = out_dir / REPORT_HTML
    try:
        for stage in run.stages:
            write_contact_sheet(run, stage)
        tmp = target.with_name(f".{REPORT_HTML}.{os.getpid()}.tmp")
        tmp.write_text(render(run, generated_at=now()), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise storage_error(exc, f"writing the report in {out_dir}") from exc
    return target


def _with_thumbnail(out_dir: Path, row: data.Row) -> data.Row:
    if not row.file_name:
        return row
    thumb = ensure_thumbnail(out_dir, row.file_name) or ""
    return row if thumb == row.thumb else dataclasses.replace(row, thumb=thumb)
