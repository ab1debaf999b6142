"""Temporary files that a killed ``report`` (or run) left in an output folder, and their removal.

Every file of the folder is written under a temporary name and renamed into place, so a reader never sees
half of one; a process killed in between leaves the temporary file. Those written by code that may run
beside another process on the same folder (the report, thumbnails) carry the writer's pid:
``.<name>.<pid>.tmp``, ``.<name>.<pid>-<thread>.tmp``, a folder ``.tmp-<pid>``; :func:`sweep` removes the
ones whose process is gone, at the start of every report. The tables' (``.manifest.csv.tmp`` and the
like) are written only under the folder's lock: :func:`sweep_locked` removes them when a run starts.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from flux_batch.outputs.layout import THUMBS_DIR
from flux_batch.runner.lock import pid_alive

_PID_TMP = re.compile(r"^\..+\.(\d+)(?:-\d+)?\.tmp$")
_PID_DIR = re.compile(r"^\.tmp-(\d+)$")
#: Written by the run only, under the folder's lock.
LOCKED_TMP = (".manifest.csv.tmp", ".metadata.parquet.tmp", ".metadata.csv.tmp", ".run.json.tmp")


def _dead(match: re.Match[str] | None) -> bool:
    return match is not None and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1)))


def sweep(out_dir: Path, parts_dir: str) -> int:
    """Remove the temporary files and folders of dead processes at the top of ``out_dir``, in its
    ``parts_dir`` and anywhere under its thumbnails; return how many."""
    out_dir = Path(out_dir)
    removed = 0
    for folder in (out_dir, out_dir / parts_dir):
        for entry in _entries(folder):
            if entry.is_file() and _dead(_PID_TMP.match(entry.name)):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
            elif entry.is_dir() and _dead(_PID_DIR.match(entry.name)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    for root, _, files in os.walk(out_dir / THUMBS_DIR):
        for name in files:
            if name.startswith(".") and _dead(_PID_TMP.match(name)):
                Path(root, name).unlink(missing_ok=True)
                removed += 1
    return removed


def sweep_locked(out_dir: Path) -> int:
    """Remove the run's own temporary files (call with the folder's lock held); return how many."""
    removed = 0
    for name in LOCKED_TMP:
        path = Path(out_dir) / name
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []
