"""Paths read back from the state or the CSV, resolved only inside the output folder.

A ``file_name`` in ``state.db`` or ``manifest.csv`` is data from outside the program: a tampered or
damaged folder may hold an absolute path or a ``..``. Every such path goes through :func:`inside` before
anything is read or written through it, so that resume, report and thumbnails never touch a file
elsewhere. The check is on the text alone (a few microseconds: a resume checks every file of the folder);
links inside the folder are the folder owner's own doing, as are the files themselves.
"""

from __future__ import annotations

from pathlib import Path


def inside(out_dir: Path, rel_path: str) -> Path | None:
    """``out_dir / rel_path`` if ``rel_path`` is a relative path that stays inside ``out_dir``, else None."""
    return Path(out_dir) / rel_path if stays_inside(rel_path) else None


def stays_inside(rel_path: str) -> bool:
    """Whether ``rel_path`` is a relative path that stays inside the folder it is relative to."""
    if not rel_path or len(rel_path) > 4096 or "\x00" in rel_path or "\\" in rel_path:
        return False
    if rel_path.startswith("/") or (len(rel_path) > 1 and rel_path[1] == ":"):  # absolute, a drive
        return False
    return not any(part in ("", ".", "..") for part in rel_path.split("/"))
