"""Identity (flux_batch/jobs/ids.py): canonical JSON, content hashes, job ids, derived seeds, slugs."""

from __future__ import annotations

import enum
import json
import types
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import pytest

from flux_batch.jobs.ids import SEED_MODULUS, canonical_json, content_hash, derive_seed, job_id, slugify


def test_canonical_json_sorted_compact_and_integral_floats() -> None:
    assert canonical_json({"b": 1.0, "a": [2.5, "é"]}) == '{"a":[2.5,"é"],"b":1}'


def test_content_hash_ignores_key_order_and_float_spelling() -> None:
    assert content_hash({"a": 3, "b": 1}) == content_hash({"b": 1.0, "a": 3.0})
    assert len(content_hash({})) == 16


def test_job_id_changes_with_any_part_of_the_request() -> None:
    base = job_id("o/m", None, {"prompt": "x", "seed": 1})
    assert base == job_id("o/m", None, {"seed": 1, "prompt": "x"})
    assert (
        len(
            {
                base,
                job_id("o/m", None, {"prompt": "x", "seed": 2}),
                job_id("o/n", None, {"prompt": "x", "seed": 1}),
                job_id("o/m", "a" * 64, {"prompt": "x", "seed": 1}),
                job_id("o/m", None, {"prompt": "x", "seed": 1}, ["up"]),
            }
        )
        == 5
    )
    assert job_id("o/m", None, {}, ["b", "a"]) == job_id("o/m", None, {}, ["a", "b"])


def test_derive_seed_depends_on_key_not_position() -> None:
    seed = derive_seed(42, "base", {"color": "red", "guidance": 3})
    assert seed == derive_seed(42, "base", {"guidance": 3.0, "color": "red"})
    assert 0 <= seed < SEED_MODULUS
    assert seed != derive_seed(43, "base", {"color": "red", "guidance": 3})
    assert seed != derive_seed(42, "other", {"color": "red", "guidance": 3})


def test_slugify_is_safe() -> None:
    assert slugify("A Red Cake, oil painting!") == "a-red-cake-oil-painting"
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("日本") == "image"
    assert len(slugify("word " * 40, 20)) <= 20


def _normalised_as_specified(value: Any) -> Any:
    """The normalisation as first written (isinstance checks only): what every id so far was made from."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalised_as_specified(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalised_as_specified(v) for v in value]
    return value


class Size(enum.IntEnum):
    BIG = 2


class Ratio(float):
    pass


def test_canonical_json_is_the_specified_one_for_every_kind_of_value() -> None:
    values = [
        {"b": [1.0, (2.0, {"c": 3.5})], "a": True, 7: None, "é": "ü", "n": -0.0, "big": 1e20},
        [Size.BIG, Ratio(4.0), Ratio(4.5), types.MappingProxyType({"z": 1.0}), OrderedDict(y=[2.0])],
        ("x", 0, False, 12345678901234567890, [], {}),
        3.0, "s", None,
    ]  # fmt: skip
    for value in values:
        specified = json.dumps(
            _normalised_as_specified(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
            allow_nan=False,
        )  # fmt: skip
        assert canonical_json(value) == specified
    with pytest.raises(ValueError):
        canonical_json({"x": [float("nan")]})
