"""The near-duplicate index holds every kept hash of a folder (the tables and the report count
near-duplicates over all its images): its memory per hash stays a few machine words. Measured with
tracemalloc on hashes from a fixed seed, so the figure is the same on every run; nothing is timed."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from flux_batch.export.dedupe import NearDuplicates

pytestmark = pytest.mark.slow  # 60,000 hashes under tracemalloc: seconds


def _bytes_held(hashes: list[str]) -> int:
    tracemalloc.start()
    try:
        index = NearDuplicates()
        for phash in hashes:
            index.seen(phash)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_memory_per_kept_hash_is_a_few_machine_words() -> None:
    rng = random.Random(3)
    first = [f"{rng.getrandbits(64):016x}" for _ in range(20_000)]  # every band value has a bucket by now
    more = first + [f"{rng.getrandbits(64):016x}" for _ in range(40_000)]
    per_hash = (_bytes_held(more) - _bytes_held(first)) / 40_000
    # 5 bands of 8 bytes and the arrays' growth room: 55 bytes; a list of Python ints per band value: 90
    assert per_hash < 70, per_hash
