"""Files of an export put in place whole: written under a hidden ``.partial`` name in their final folder,
fsynced, then renamed. An interrupted export leaves only ``.partial`` names, which no reader takes for a
shard and the next export removes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from flux_batch.errors import storage_error
from flux_batch.runner.download import fsync_dir

PARTIAL = ".partial"


def partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{PARTIAL}")


@contextmanager
def written(final: Path) -> Iterator[BinaryIO]:
    """``with written(path) as fh: ...``: ``path`` appears, whole, only if the block ends without error."""
    tmp = partial_name(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, f"writing {final}") from exc
        raise


@contextmanager
def written_dir(final: Path) -> Iterator[Path]:
    """Like :func:`written` for a folder: the block fills the yielded folder, renamed to ``final`` after."""
    tmp = partial_name(final)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        # One sync for the shard's thousands of files: an fsync each took 10,000 images from 4 s to 49 s.
        os.sync()
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, f"writing {final}") from exc
        raise


def remove_partials(root: Path) -> int:
    """Remove what interrupted exports left under ``root``; return how many."""
    found = [p for p in root.rglob(f".*{PARTIAL}")] if root.exists() else []
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(found)
