"""Small WebP thumbnails of output images, under the output folder's hidden ``.thumbs/`` folder.

The runner has one made after each image is downloaded (in a worker process, with the image's quality
values: :mod:`flux_batch.outputs.derived`), so the report rarely has to decode full-size images.
``images/<stage>/<stem>.<ext>`` gets ``.thumbs/<stage>/<stem>.webp``: the folder starts with a dot so that
the Hugging Face imagefolder loader, which skips hidden folders, does not count thumbnails as dataset
rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from flux_batch.outputs.derived import derive_in_order
from flux_batch.outputs.layout import IMAGES_DIR, THUMBS_DIR
from flux_batch.outputs.quality import parse_flags, with_size_flag
from flux_batch.outputs.safepath import inside

if TYPE_CHECKING:
    from flux_batch.report.data import Folder, Row

#: The longest side of a thumbnail, in pixels: sharp in a grid cell, a few kilobytes on disk.
THUMB_SIZE = 256
THUMB_QUALITY = 80
#: libwebp's fastest encoder setting. A thumbnail is made for every image as it is downloaded, and method 4
#: (the default) cost more than the whole rest of the thumbnail (figures: docs/benchmarks.md); at 256 px
#: the files are a little larger and look the same.
THUMB_WEBP_METHOD = 0


def thumb_path_for(rel_image_path: str) -> str:
    """The thumbnail's path relative to the output folder, for an image path relative to it.

    ``images/base/cat-1a2b.png`` -> ``.thumbs/base/cat-1a2b.webp`` (a path outside ``images/`` keeps its
    folders below ``.thumbs/``).
    """
    # Plain string work: a report of 100,000 images asks this 300,000 times (pathlib took 17 s of it).
    parts = [p for p in rel_image_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[0] == IMAGES_DIR:
        parts = parts[1:]
    if not parts or ".." in parts or rel_image_path.startswith(("/", "\\")):
        raise ValueError(f"{rel_image_path!r} is not a path inside the output folder")
    name = parts[-1]
    dot = name.rfind(".")
    parts[-1] = (name[:dot] if dot > 0 else name) + ".webp"
    return "/".join((THUMBS_DIR, *parts))


def make_thumbnail(out_dir: Path, rel_image_path: str) -> str:
    """Write the thumbnail of ``out_dir/rel_image_path`` and return its path relative to ``out_dir``.

    The image is scaled to fit ``THUMB_SIZE`` pixels (never enlarged), EXIF rotation applied, the first
    frame of an animation taken. The file is written to a temporary name and renamed, so a crash never
    leaves a truncated thumbnail behind. Raises ``OSError`` (Pillow's ``UnidentifiedImageError`` included)
    if the image cannot be read.
    """
    source = inside(out_dir, rel_image_path)
    if source is None:  # a tampered file_name: never read or write outside the folder
        raise ValueError(f"{rel_image_path!r} is not a path inside the output folder")
    with Image.open(source) as image:
        image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at a reduced scale, much faster
        return save_thumbnail(image, out_dir, rel_image_path)


def save_thumbnail(image: Image.Image, out_dir: Path, rel_image_path: str) -> str:
    """Write the thumbnail of ``image`` (opened from ``out_dir/rel_image_path``, decoded or not; changed
    in place) as :func:`make_thumbnail` does, and return its path relative to ``out_dir``."""
    rel_thumb = thumb_path_for(rel_image_path)
    target = inside(out_dir, rel_thumb)
    if target is None:
        raise ValueError(f"{rel_image_path!r} is not a path inside the output folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    small = image
    # In place: without it, exif_transpose copies every image, rotated or not.
    ImageOps.exif_transpose(small, in_place=True)
    small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA" if "transparency" in small.info or small.mode in ("LA", "PA") else "RGB")
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        small.save(tmp, "WEBP", quality=THUMB_QUALITY, method=THUMB_WEBP_METHOD)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return rel_thumb


def with_thumbnails(folder: Folder, *, make: bool = True) -> Iterator[tuple[Row, str | None]]:
    """``folder``'s rows, each with its thumbnail's path (None: no image, or it cannot be read). What a
    killed run did not make is made here, on every core: a missing thumbnail, and the quality values of
    an image manifest.csv has none for (the next run records them in the state); an older manifest.csv
    without the ``flags`` column is taken as it is. With ``make=False`` nothing is made: an image without
    its thumbnail stands for it (a stopped run's report, written while its user waits)."""
    out_dir = folder.out_dir
    checked = "flags" in folder.header

    def to_make(row: Row) -> str | None:
        if not make or not row.file_name:
            return None
        if checked and row.status == "succeeded" and not row.phash and not row.flags:
            return row.file_name
        return None if _made(out_dir, row.thumb) else row.file_name

    for row, made in derive_in_order(out_dir, folder.rows(), to_make):
        if made is None:
            yield row, _shown(out_dir, row, stand_in=not make)
            continue
        if checked and not row.phash and not row.flags:
            size = (row.width or 0, row.height or 0)
            flags = with_size_flag(parse_flags(made.flags), size, row.input)
            row = replace(row, phash=made.phash or "", flags=flags)
        yield row, made.thumb


def _shown(out_dir: Path, row: Row, *, stand_in: bool) -> str | None:
    """What shows a row nothing was made for: its thumbnail, or with ``stand_in`` the image itself."""
    if not row.file_name:
        return None
    if _made(out_dir, row.thumb):
        return row.thumb
    return row.file_name if stand_in and _made(out_dir, row.file_name) else None


def _made(out_dir: Path, rel_thumb: str) -> bool:
    """Whether the thumbnail is in place (not empty: a power cut can leave a renamed file without data)."""
    try:
        return os.stat(os.path.join(out_dir, rel_thumb)).st_size > 0
    except (OSError, ValueError):
        return False


def ensure_thumbnail(out_dir: Path, rel_image_path: str) -> str | None:
    """The thumbnail's relative path, making it if it is missing; None if the image cannot be read."""
    try:
        rel_thumb = thumb_path_for(rel_image_path)
        if _made(out_dir, rel_thumb):
            return rel_thumb
        return make_thumbnail(out_dir, rel_image_path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # what Pillow raises for missing, truncated, malformed or absurdly large files
