"""Near-duplicate detection over perceptual hashes, in one pass and without comparing every pair.

Two 64-bit hashes within ``distance`` bits of each other agree exactly on at least one of ``distance + 1``
bands of the hash (pigeonhole), so each hash is compared only with the hashes that share one of its bands.
The first image seen (in manifest order) is kept; a later one within ``distance`` bits of a kept one is a
duplicate of it.

The kept hashes are held as machine words, 8 bytes per band, in one ``array`` per band value rather than
a list of Python ints: the tables and the report count near-duplicates over every image of a folder, so
this index grows with the folder (docs/benchmarks.md, "Scale").
"""

from __future__ import annotations

import itertools
from array import array

from flux_batch.outputs.quality import DEDUPE_DISTANCE_DEFAULT as DEDUPE_DISTANCE

BITS = 64


class NearDuplicates:
    """``seen(phash_hex) -> bool``: whether the hash is within ``distance`` bits of one seen before (a
    hash that is not is remembered)."""

    def __init__(self, distance: int = DEDUPE_DISTANCE) -> None:
        if not 0 <= distance < BITS:
            raise ValueError(f"a distance between 0 and {BITS - 1} bits")
        self.distance = distance
        bands = distance + 1
        edges = [round(i * BITS / bands) for i in range(bands + 1)]
        self._bands = [(lo, (1 << (hi - lo)) - 1) for lo, hi in itertools.pairwise(edges)]
        self._index: list[dict[int, array[int]]] = [{} for _ in self._bands]
        self.kept = 0

    def seen(self, phash: str) -> bool:
        value = int(phash, 16)
        keys = [(value >> lo) & mask for lo, mask in self._bands]
        for index, key in zip(self._index, keys, strict=True):
            for other in index.get(key, ()):
                if (value ^ other).bit_count() <= self.distance:
                    return True
        for index, key in zip(self._index, keys, strict=True):
            bucket = index.get(key)
            if bucket is None:
                index[key] = array("Q", (value,))
            else:
                bucket.append(value)
        self.kept += 1
        return False

    def __repr__(self) -> str:
        return f"NearDuplicates(distance={self.distance}, kept={self.kept})"
