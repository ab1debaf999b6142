"""Sample keys, and the set of keys an export already holds.

A sample's key is its image's file stem in the output folder: the job id (16 hex digits), and ``-<n>``
for a job's n-th image (:func:`flux_batch.outputs.layout.image_stem`). It is stable across runs and
machines, holds
no dot (WebDataset splits a member name at its first dot: ``<key>.<ext>``), and no letter beyond ``a``-``f``
(so no split name such as ``train`` or ``test`` can appear in a file name made from it).
"""

from __future__ import annotations

import hashlib
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import PurePosixPath

from flux_batch.errors import StateError

_KEY = re.compile(r"[0-9a-f]+(-[0-9]+)?")


def sample_key(file_name: str) -> str:
    """The key of the image at ``file_name`` (relative to the output folder)."""
    stem = PurePosixPath(file_name).stem
    if not _KEY.fullmatch(stem):
        raise StateError(
            f"{file_name}: not an image name flux-batch gives (<job id>[-<n>].<ext>); was the folder "
            "edited by hand? Run `flux-batch run` on it again to put its files back in place"
        )
    return stem


def extension(file_name: str) -> str:
    """The image's extension without the dot, lower case (``webp``, ``png``, ``jpg``)."""
    return PurePosixPath(file_name).suffix.lstrip(".").lower()


def _fingerprint(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class KeySet:
    """Keys already exported, held as sorted 64-bit hashes: 8 bytes a key (8 MB at a million), not the
    ~70 a Python set of strings takes. Two keys sharing a hash (odds about 1 in 10^7 at a million keys)
    would make the second one look exported; a later full export (``--overwrite``) puts it back."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._hashes = array("Q", sorted(_fingerprint(k) for k in keys))

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        value = _fingerprint(key)
        i = bisect_left(self._hashes, value)
        return i < len(self._hashes) and self._hashes[i] == value

    def __repr__(self) -> str:
        return f"KeySet({len(self)} keys)"
