"""Shard planning: which samples go into which shard, decided as rows stream by.

A shard closes when it holds ``images`` samples or when the next sample would take its image bytes past
``bytes`` (a shard always takes at least one sample). Only the current shard's rows are held, never the
whole table. Shards are numbered from ``start`` (an incremental export continues after the last one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

FORMATS = ("webdataset", "parquet", "imagefolder")

#: The Hub's limit of files in one folder: an imagefolder shard holds its images and its metadata file.
HUB_FOLDER_FILES = 10_000
MB = 1_000_000


@dataclass(frozen=True)
class ShardLimits:
    """At most ``images`` samples and ``bytes`` bytes of image data a shard."""

    images: int
    bytes: int

    def __post_init__(self) -> None:
        if self.images < 1 or self.bytes < 1:
            raise ValueError("shard limits must be positive")


#: Per format: WebDataset's advice is shards of a few hundred MB to a few GB, read whole and in parallel
#: (img2dataset writes 10,000 samples a shard); the Hub advises Parquet files of up to about 500 MB
#: (``push_to_hub``'s ``max_shard_size``); an imagefolder folder holds at most 10,000 files on the Hub.
DEFAULT_LIMITS = {
    "webdataset": ShardLimits(images=10_000, bytes=1_000 * MB),
    # A shard's rows (about 2 kB each, no image) are held while it is planned: 10,000 keeps that near
    # 20 MB (100,000 small images in one 376 MB shard peaked at 423 MB against 187 MB for 10,000).
    "parquet": ShardLimits(images=10_000, bytes=500 * MB),
    "imagefolder": ShardLimits(images=5_000, bytes=10_000 * MB),
}
#: The most images a shard of each format may hold.
MAX_IMAGES = {"webdataset": 10**9, "parquet": 10**9, "imagefolder": HUB_FOLDER_FILES - 1}


def limits_for(fmt: str, images: int | None = None, size_bytes: int | None = None) -> ShardLimits:
    """The format's default limits with the user's ``images`` and ``size_bytes`` where given."""
    base = DEFAULT_LIMITS[fmt]
    return ShardLimits(images or base.images, size_bytes or base.bytes)


def plan(
    items: Iterable[T], size_of: Callable[[T], int], limits: ShardLimits, *, start: int = 0
) -> Iterator[tuple[int, list[T]]]:
    """``(shard number, items)`` for each shard, in order; items keep their order."""
    shard: list[T] = []
    total = 0
    number = start
    for item in items:
        size = size_of(item)
        if shard and (len(shard) >= limits.images or total + size > limits.bytes):
            yield number, shard
            number += 1
            shard, total = [], 0
        shard.append(item)
        total += size
    if shard:
        yield number, shard


def shard_name(number: int) -> str:
    """A shard's name: six digits (a million shards), nothing a loader could read as a split name."""
    return f"{number:06d}"
