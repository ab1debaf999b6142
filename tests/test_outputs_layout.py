"""File and folder names never make Hugging Face ``datasets`` infer splits, for any stage id."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_batch.jobs.ids import content_hash
from flux_batch.outputs.layout import SHARD_JOBS, image_dir, image_stem, in_layout, sheet_name, split_safe

#: Stage ids with split words in every position the loader looks at (the schema allows [a-z0-9_-]).
STAGE_IDS = (
    "train", "test", "valid", "validation", "dev", "eval", "evaluation", "val", "training", "testing",
    "edit-test", "test-edit", "a-test-b", "v2test", "test2", "2test", "dev_eval", "x_train_y", "gen",
)  # fmt: skip


def test_split_safe_puts_a_marker_before_every_word() -> None:
    assert split_safe("test") == "=test"
    assert split_safe("edit-v2test_x") == "=edit-=v2=test_=x"
    assert split_safe("2024") == "2024"


def test_names() -> None:
    assert image_dir("gen", 0) == "images/=gen/000"
    assert image_dir("gen", SHARD_JOBS * 12 + 3) == "images/=gen/012"
    assert image_stem("0a1b", 0) == "0a1b" and image_stem("0a1b", 2) == "0a1b-2"
    assert in_layout("images/=gen/007/0a1b-2.webp", "gen", "0a1b", 2)
    assert not in_layout("images/gen/a-test-0a1b.webp", "gen", "0a1b", 0)
    assert not in_layout("images/=gen/007/0a1b.webp", "gen", "0a1b", 1)
    assert sheet_name("dev-test") == "grid_=dev-=test.png"


@pytest.mark.slow
def test_datasets_infers_no_split_from_any_name(tmp_path: Path) -> None:
    from datasets.data_files import SPLIT_KEYWORDS, get_data_patterns

    # A job id is hex: its letters (a-f) spell no split keyword.
    assert all(set(word) - set("abcdef") for words in SPLIT_KEYWORDS.values() for word in words)
    for n, stage in enumerate(STAGE_IDS):
        for i in range(3):
            job = content_hash({"stage": stage, "i": i})
            path = tmp_path / image_dir(stage, n * SHARD_JOBS + i) / f"{image_stem(job, i)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        (tmp_path / sheet_name(stage)).write_bytes(b"")
    (tmp_path / "metadata.parquet").write_bytes(b"")
    assert get_data_patterns(str(tmp_path)) == {"train": ["**"]}
    # and the check itself is real: one unmarked folder is enough to split the folder
    (tmp_path / "images/test").mkdir()
    (tmp_path / "images/test/x.png").write_bytes(b"")
    assert "test" in get_data_patterns(str(tmp_path))
