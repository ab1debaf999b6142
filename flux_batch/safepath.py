"""Paths read back from the state or the CSV, resolved only inside the output folder.

A ``file_name`` in ``state.db`` or ``manifest.csv`` is data from outside the program: a tampered or
damaged folder may hold an absolute path, a ``..`` or a link out of the folder. Every such path is resolved
with :func:`inside` before anything is read or written through it, so that resume, report and thumbnails
never touch a file elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def inside(out_dir: Path, rel_path: str) -> Path | None:
    """``out_dir / rel_path`` if ``rel_path`` is a relative path that stays inside ``out_dir`` (links
    followed), else None."""
    if not rel_path or "\x00" in rel_path or "\\" in rel_path or len(rel_path) > 4096:
        return None
    parts = PurePosixPath(rel_path).parts
    if not parts or PurePosixPath(rel_path).is_absolute() or any(p in ("..", "") for p in parts):
        return None
    if os.path.splitdrive(rel_path)[0]:
        return None
    path = Path(out_dir) / rel_path
    try:
        root = Path(out_dir).resolve()
        if not path.resolve().is_relative_to(root):
            return None
    except (OSError, RuntimeError):  # a link loop, a path the system cannot resolve
        return None
    return path
