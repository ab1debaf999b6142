"""Moves the images of a folder made by an older flux-batch into the current layout, once, at run start.

Older versions named an image ``images/<stage>/<prompt slug>-<job id>.<ext>``: a prompt or stage id with
a word such as "test" or "train" in it made ``datasets`` split the folder (see
:mod:`flux_batch.outputs.layout`),
and a big stage put every image in one folder. Resuming such a folder moves each downloaded image (and its
thumbnail) to ``images/<stage>/<shard>/<job id>.<ext>`` instead of leaving two layouts side by side; nothing
is downloaded or created again.

Crash-safe in this order: a batch of files is renamed, their folders are fsynced, then the new names are
committed to the state. A run killed in between finds the state naming a file that is gone and the file at
its new name, and only records it (this runs before missing files are reopened for download).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

from flux_batch.outputs.layout import IMAGES_DIR, image_dir, image_stem, in_layout
from flux_batch.report.thumbnails import thumb_path_for
from flux_batch.runner.download import fsync_dir
from flux_batch.runner.state.store import Store

BATCH = 500


def relayout(store: Store, out_dir: Path) -> int:
    """Move every downloaded image not in the current layout; return how many were moved."""
    todo = [f for f in store.unsharded_files() if not in_layout(f[4], f[2], f[0], f[1])]
    moved = 0
    for start in range(0, len(todo), BATCH):
        moves: list[tuple[str, str | None, str, int]] = []
        folders: set[Path] = set()
        for job_id, idx, stage, seq, old in todo[start : start + BATCH]:
            if not _inside_images(old):
                continue  # not a path this program wrote: never follow it
            new = f"{image_dir(stage, seq)}/{image_stem(job_id, idx)}{PurePosixPath(old).suffix}"
            source, target = out_dir / old, out_dir / new
            if source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                folders.update((source.parent, target.parent))
            elif not target.is_file():
                continue  # gone: a resume downloads it again (or redoes the job)
            moves.append((new, _move_thumbnail(out_dir, old, new), job_id, idx))
        for folder in folders:
            fsync_dir(folder)
        store.move_files(moves)
        moved += len(moves)
        for folder in folders:
            with contextlib.suppress(OSError):  # an old stage folder, emptied
                folder.rmdir()
    return moved


def _inside_images(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return len(parts) >= 2 and parts[0] == IMAGES_DIR and not any(p in ("", ".", "..") for p in parts)


def _move_thumbnail(out_dir: Path, old: str, new: str) -> str | None:
    """Move the old image's thumbnail beside the new one's name; the new thumbnail path, or None."""
    source, rel = out_dir / thumb_path_for(old), thumb_path_for(new)
    try:
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, out_dir / rel)
    except OSError:
        return rel if (out_dir / rel).is_file() else None  # the report makes a missing one
    with contextlib.suppress(OSError):
        source.parent.rmdir()
    return rel
