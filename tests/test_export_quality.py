"""Bad-sample flags and near-duplicates on seeded test images."""

from __future__ import annotations

import io
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_folder import build_folder
from PIL import Image, ImageDraw

from flux_batch.export import ExportOptions, export
from flux_batch.export.dedupe import NearDuplicates
from flux_batch.outputs.quality import (
    BLANK,
    DEDUPE_DISTANCE_DEFAULT,
    UNDECODABLE,
    WRONG_SIZE,
    inspect_image,
    parse_flags,
    requested_size,
    wrong_size,
)
from flux_batch.outputs.tables import write_tables
from flux_batch.runner.state.store import STATE_FILE, Store


def picture(seed: int, size: tuple[int, int] = (256, 256), fmt: str = "WEBP", quality: int = 90) -> bytes:
    """A seeded picture: random shapes on a random background."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(20, size[0] // 2), rng.randrange(20, size[1] // 2)
        draw.ellipse((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    image.save(buf, fmt, quality=quality)
    return buf.getvalue()


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def test_a_good_picture_has_a_hash_and_no_flag() -> None:
    found = inspect_image(picture(1), {"aspect_ratio": "1:1"})
    assert found.flags == ()
    assert found.phash is not None and len(found.phash) == 16


def test_black_and_nearly_uniform_images_are_blank() -> None:
    black = encoded(Image.new("RGB", (512, 512)))
    assert inspect_image(black).flags == (BLANK,)
    rng = random.Random(3)
    noisy = Image.new("L", (128, 128), 200)
    noisy.putdata([200 + rng.choice((-1, 0, 1)) for _ in range(128 * 128)])
    assert inspect_image(encoded(noisy)).flags == (BLANK,)


def test_truncated_and_foreign_files_are_undecodable() -> None:
    whole = picture(2, fmt="PNG")
    assert inspect_image(whole[: len(whole) // 2]).flags == (UNDECODABLE,)
    assert inspect_image(b"<html>not an image</html>") == inspect_image(b"")
    assert inspect_image(b"").phash is None


def test_wrong_size_against_the_request() -> None:
    assert requested_size({"aspect_ratio": "16:9"}) == ("ratio", (16.0, 9.0))
    custom = {"aspect_ratio": "custom", "width": 1024, "height": 768}
    assert requested_size(custom) == ("pixels", (1024.0, 768.0))
    assert requested_size({"width": 1024, "height": 768}) == ("pixels", (1024.0, 768.0))
    assert requested_size({"aspect_ratio": "match_input_image"}) is None
    assert requested_size({}) is None
    # FLUX's 16:9 at 1 MP is 1344 x 768 (1.75): within the slack; a square answer is not.
    assert not wrong_size((1344, 768), ("ratio", (16, 9)))
    assert wrong_size((1024, 1024), ("ratio", (16, 9)))
    assert not wrong_size((1024, 752), ("pixels", (1024, 768)))
    assert wrong_size((512, 512), ("pixels", (1024, 1024)))
    found = inspect_image(picture(4, size=(256, 256)), {"aspect_ratio": "16:9"})
    assert found.flags == (WRONG_SIZE,)
    both = inspect_image(encoded(Image.new("RGB", (64, 64))), {"width": 1024, "height": 1024})
    assert both.flag_text == "blank;wrong_size"
    assert parse_flags(both.flag_text) == (BLANK, WRONG_SIZE) and parse_flags(None) == ()


def test_near_duplicates_within_the_threshold() -> None:
    original = picture(10, size=(512, 512), fmt="PNG")
    image = Image.open(io.BytesIO(original))
    resized = encoded(image.resize((384, 384)), "PNG")
    recompressed = picture(10, size=(512, 512), fmt="JPEG", quality=60)
    near = NearDuplicates()
    assert not near.seen(inspect_image(original).phash or "")
    assert near.seen(inspect_image(resized).phash or "")
    assert near.seen(inspect_image(recompressed).phash or "")
    others = [inspect_image(picture(seed, size=(512, 512))).phash or "" for seed in range(100, 140)]
    assert sum(near.seen(h) for h in others) == 0  # 40 different pictures: none taken for a duplicate
    assert near.kept == 41


@pytest.mark.parametrize("distance", [0, 1, 4, 10])
def test_band_index_agrees_with_comparing_every_pair(distance: int) -> None:
    rng = random.Random(distance)
    base = [rng.getrandbits(64) for _ in range(60)]
    hashes = base + [h ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for h in base[:30]]
    rng.shuffle(hashes)
    near = NearDuplicates(distance)
    kept: list[int] = []
    for h in hashes:
        expected = any((h ^ k).bit_count() <= distance for k in kept)
        assert near.seen(f"{h:016x}") == expected
        if not expected:
            kept.append(h)
    assert NearDuplicates().distance == DEDUPE_DISTANCE_DEFAULT


def test_a_folder_without_recorded_hashes_exports_as_if_they_were_recorded(tmp_path: Path) -> None:
    """A folder made before flux-batch recorded hashes and flags (its outputs' columns empty, as the
    migration leaves them): the export finds them from the files, leaves out the same samples and writes
    the same bytes, hashes and flags included, as from a folder that recorded them."""
    recorded = build_folder(tmp_path / "new" / "out", 24, blank=2, wrong_size=2, duplicates=2).out
    older = build_folder(tmp_path / "old" / "out", 24, blank=2, wrong_size=2, duplicates=2).out
    db = sqlite3.connect(older / STATE_FILE)
    db.execute("UPDATE outputs SET phash = NULL, flags = NULL")
    db.commit()
    db.close()
    store = Store.open(older)
    write_tables(store, older)
    store.close()
    table = pq.read_table(older / "metadata.parquet")
    assert set(table.column("phash").to_pylist()) == {None} == set(table.column("flags").to_pylist())
    for options in (ExportOptions("parquet", dedupe=True), ExportOptions("parquet", keep_flagged=True)):
        mine = options.fmt + ("-dedupe" if options.dedupe else "-flagged")
        summary = export(older, tmp_path / "old" / mine, options)
        assert summary == replace(export(recorded, tmp_path / "new" / mine, options), to=summary.to)
        shards = [tmp_path / era / mine / "data" / "000000.parquet" for era in ("old", "new")]
        assert shards[0].read_bytes() == shards[1].read_bytes()
    assert summary.excluded == {} and summary.samples == 24
    rows = pq.read_table(shards[0]).to_pylist()
    for row in rows:
        assert row["phash"] == inspect_image(row["image"]["bytes"]).phash and len(row["phash"]) == 16
    assert sorted(row["flags"] for row in rows if row["flags"]) == ["blank"] * 2 + ["wrong_size"] * 2
    deduped = export(older, tmp_path / "old" / "d2", ExportOptions("parquet", dedupe=True))
    assert deduped.excluded == {"blank": 2, "wrong_size": 2, "near_duplicate": 2}
