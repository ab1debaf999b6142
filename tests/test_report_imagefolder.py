"""The output folder stays a Hugging Face imagefolder dataset after the report is written: thumbnails
(in the hidden .thumbs/) and report files add no rows and break nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import build_output_folder

from flux_batch.report import write_report

pytestmark = pytest.mark.slow  # loading Hugging Face datasets takes seconds


def test_imagefolder_loads_one_row_per_succeeded_image(tmp_path: Path) -> None:
    import datasets  # here, not at the top: importing it costs the quick suite's collection 1.6 s

    out = tmp_path / "out"
    syn = build_output_folder(out)
    write_report(out)
    assert list(out.glob(".thumbs/*/*/*.webp")) and list(out.glob("grid_*.png"))
    dataset = datasets.load_dataset(
        "imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    succeeded = [r for r in syn.rows if r["status"] == "succeeded"]
    assert dataset.num_rows == len(succeeded) == 24
    assert sorted(dataset["job_id"]) == sorted(r["job_id"] for r in succeeded)
    assert {"image", "prompt", "seed", "subject", "guidance", "style"} <= set(dataset.column_names)
    assert dataset[0]["image"].size == (96, 96)
