"""At scale: a three-stage manifest of 5,000 jobs on the in-process simulator (near-zero latency, on a
clock that only moves when something waits) with faults on, then the invariants of the output folder.

Every row an image or a job without one, and each once; no file name twice; every file's sha256 as
recorded, and no other file; ``load_dataset("imagefolder")`` gives one row per image; the report's counts
are the table's; ``status`` agrees; and the stages overlap: a downstream job is created as soon as its
upstream job is done, before the last upstream job is, and indeed before half of them are.

The run has the default limits (600 creates a minute, 100 in flight), so that jobs queue as they would
against the real API. The harness's clock moves by each sleep in turn, so its times stand for the order of
events rather than for durations: the overlap is checked in that order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_harness import simulator
from scale_run import (
    FAULTS,
    check_folder,
    metadata_rows,
    report_counts,
    run_manifest,
    stage_overlap,
    write_manifest,
)
from scale_run import table as read_table

from flux_batch.report import write_report
from flux_batch.runner.status import folder_status
from flux_batch.simulator import SimConfig

pytestmark = pytest.mark.slow
GENERATIONS = 1250  # x 4: 5,000 jobs


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory (/dev/shm) where there is one: the run fsyncs every intent, file and folder, and
    on a slow disk 15,000 fsyncs took four minutes of this test's five; what is tested is the outputs."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="flux-batch-scale-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_five_thousand_jobs_in_three_stages_with_faults(tmp_path: Path, fast_dir: Path) -> None:
    manifest = write_manifest(tmp_path, GENERATIONS)
    out = fast_dir / "out"
    sim = simulator(SimConfig(latency=0.05, seed=11, faults=FAULTS))
    result = await run_manifest(
        manifest, out, sim.http, sim.base_url, clock=sim.clock, wall_clock=sim.clock, sleep=sim.clock.sleep,
        report=False,
    )  # fmt: skip
    stats = sim.stats()
    assert stats["duplicate_predictions"] == 0
    figures = check_folder(out, manifest)
    db = figures.pop("db")
    assert figures["jobs"] == 5000 and figures["failed"] > 0  # the content filter did fail some
    assert result.images == figures["images"] == metadata_rows(out)
    assert result.summary["counts"] == {k: v for k, v in folder_status(out).totals.items() if v}

    rows = read_table(out)
    page = write_report(out).read_text(encoding="utf-8")
    shown = report_counts(page)
    assert shown["images"] == figures["images"] and shown["jobs"] == 5000
    by_status: dict[str, int] = {}
    for job_status in {r["job_id"]: r["status"] for r in rows}.values():
        by_status[job_status] = by_status.get(job_status, 0) + 1
    assert {k: v for k, v in shown.items() if k not in ("images", "jobs")} == by_status

    from datasets import load_dataset

    dataset = load_dataset("imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset.num_rows == figures["images"]
    # one row per image, with its prompt and parameters as the table has them (the table's checked above)
    images = {r["job_id"]: r for r in rows if r["status"] == "succeeded" and r["file_name"]}
    loaded = dataset.remove_columns("image").to_list()
    assert sorted(r["job_id"] for r in loaded) == sorted(images)
    for r in loaded:
        want = images[r["job_id"]]
        assert (r["prompt"], r["seed"], r["stage"]) == (want["prompt"], int(want["seed"]), want["stage"])
        for column in ("subject", "style", "edit", "input_input_image", "input_output_format"):
            assert (r[column] or "") == want[column], (column, r["job_id"])
        assert want["input_output_format"] == "jpg"

    # Stages overlap: the first edit is created before the last generation is done, and before half are.
    for stage, upstream in (("dev-test", "train"), ("eval", "dev-test")):
        first_create, median_done, last_done = stage_overlap(db, stage, upstream)
        assert first_create < last_done, f"{stage} waited for all of {upstream}"
        assert first_create < median_done, f"{stage} waited for most of {upstream}"
