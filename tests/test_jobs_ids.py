"""Identity (flux_batch/jobs/ids.py): canonical JSON, content hashes, job ids, derived seeds, slugs."""

from __future__ import annotations

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
