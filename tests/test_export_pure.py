"""The export's pure parts: sample keys, the key set, shard planning, tar headers and the dataset card."""

from __future__ import annotations

import io
import tarfile

import pytest
import yaml

from flux_batch.errors import StateError
from flux_batch.export.card import CardFacts, card_text, size_category
from flux_batch.export.keys import KeySet, extension, sample_key
from flux_batch.export.shards import ShardLimits, limits_for, plan, shard_name
from flux_batch.export.tarball import MTIME, ShardTar, member


def test_keys_are_file_stems_from_job_ids() -> None:
    assert sample_key("images/=sketch/000/0123abcd4567ef89.webp") == "0123abcd4567ef89"
    assert sample_key("images/=edit/001/0123abcd4567ef89-2.png") == "0123abcd4567ef89-2"
    assert extension("images/=a/000/00ff.JPG") == "jpg"
    for bad in ("images/x/000/a train.webp", "images/x/000/ab.cd.webp", "images/x/000/-1.png"):
        with pytest.raises(StateError, match="not an image name"):
            sample_key(bad)


def test_key_set_membership() -> None:
    keys = [f"{i:016x}" for i in range(5000)]
    found = KeySet(keys[::2])
    assert len(found) == 2500
    assert all(k in found for k in keys[::2])
    assert not any(k in found for k in keys[1::2])
    assert 3 not in found


def test_plan_closes_shards_at_either_limit() -> None:
    sizes = [10, 10, 10, 50, 10, 10, 10, 10, 10]
    shards = list(plan(enumerate(sizes), lambda item: item[1], ShardLimits(images=3, bytes=40), start=7))
    assert [(n, [i for i, _ in items]) for n, items in shards] == [
        (7, [0, 1, 2]),
        (8, [3]),  # over the byte limit alone: a shard always takes one sample
        (9, [4, 5, 6]),
        (10, [7, 8]),
    ]
    assert list(plan([], len, ShardLimits(1, 1))) == []


def test_plan_streams() -> None:
    pulled = []

    def items():
        for i in range(10):
            pulled.append(i)
            yield i

    shards = plan(items(), lambda _: 1, ShardLimits(images=4, bytes=100))
    assert next(shards) == (0, [0, 1, 2, 3])
    assert pulled == [0, 1, 2, 3, 4]  # one item past the shard, never the whole table


def test_limits() -> None:
    assert limits_for("imagefolder").images < 10_000
    assert limits_for("parquet", 10, 20) == ShardLimits(10, 20)
    assert shard_name(12) == "000012"


def test_tar_headers_depend_on_content_only() -> None:
    def build(order: list[str]) -> bytes:
        buf = io.BytesIO()
        tar = ShardTar(buf)
        for key in order:
            tar.add_sample(key, {"webp": key.encode() * 100, "txt": b"a prompt"})
        tar.close()
        return buf.getvalue()

    first = build(["00aa", "00bb"])
    assert first == build(["00aa", "00bb"])
    assert first != build(["00bb", "00aa"])
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["00aa.webp", "00aa.txt", "00bb.webp", "00bb.txt"]
    headers = {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members}
    assert headers == {(MTIME, 0, 0, "", "", 0o644)}
    assert member("x.json", 3).size == 3


def test_card_front_matter_and_text() -> None:
    facts = CardFacts(
        name="cakes",
        fmt="parquet",
        images=12_345,
        shards=3,
        by_stage={"cake": 10_000, "edit": 2_345},
        by_model={"black-forest-labs/flux-pro": 12_345},
        excluded={"blank": 4, "near_duplicate": 2},
        license="apache-2.0",
        license_note="Made with FLUX.1 [schnell], Apache 2.0.",
        manifest_text="name: cakes\nstages: []\n",
        options="out --format parquet --to ds",
    )
    text = card_text(facts)
    assert text.startswith("---\n")
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["license"] == "apache-2.0"
    assert head["size_categories"] == ["10K<n<100K"]
    assert head["configs"] == [{"config_name": "default", "data_files": "data/*.parquet"}]
    assert "| `edit` | 2,345 |" in text
    assert "- blank: 4" in text and "- near_duplicate: 2" in text
    assert "Made with FLUX.1 [schnell], Apache 2.0." in text
    assert "```yaml\nname: cakes\nstages: []\n```" in text
    assert card_text(facts) == text
    assert "No licence note was given" in card_text(CardFacts("x", "webdataset", 1, 1, {}, {}))
    assert [size_category(n) for n in (0, 999, 1000, 999_999, 1_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "100K<n<1M",
        "1M<n<10M",
    ]
