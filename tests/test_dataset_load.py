"""The output folder loads with ``load_dataset("imagefolder", data_dir=OUT)``: one row per image, with its
prompt and parameters exactly as sent, for any prompt text, stage id and size."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from runner_harness import KONTEXT, SCHNELL, make_job, run, simulator
from test_outputs_tables_at_scale import read, succeed_all

from flux_batch.jobs import Job, upstream_ref
from flux_batch.jobs.ids import job_id
from flux_batch.outputs.tables import write_tables
from flux_batch.runner.state.store import Store
from flux_batch.simulator import SimConfig

pytestmark = pytest.mark.slow

#: Prompts a loader could take for something else: split words, nulls, numbers, dates, CSV syntax.
HOSTILE = (
    "a test tube on a desk", "train station at dawn", "valid", "dev", "eval", "None", "nan", "NA", "null",
    "007", "1e5", "2024-01-01", "2024-01-01T10:00:00Z", "true", 'say "cheese", then\nsmile', "  spaces  ",
    "naïve café ☕", "x" * 300, "test", "data/train-00000-of-00001.parquet",
)  # fmt: skip


def load(out: Path, cache: Path):  # type: ignore[no-untyped-def]
    from datasets import load_dataset

    return load_dataset("imagefolder", data_dir=str(out), split="train", cache_dir=str(cache))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_hostile_prompts_and_stage_ids_load_as_one_row_per_image(tmp_path: Path) -> None:
    # Stage ids and prompts with split words: "a test tube" named a file a-test-tube-<id>.webp, which
    # datasets read as a "test" split (and with it, labels instead of the metadata).
    jobs = []
    for i in range(30):
        prompt = HOSTILE[i % len(HOSTILE)]
        base = make_job(SCHNELL, "train", prompt, i, megapixels="0.25", output_format="jpg")
        edit = make_job(KONTEXT, "dev-test", prompt, i, needs=(base.id,), output_format="jpg")
        jobs += [(base, 0.003), (edit, 0.04)]
    out = tmp_path / "out"
    result = await run(simulator(SimConfig(latency=0.5)), jobs, out, max_in_flight=16)
    assert result.counts == {"succeeded": 60}
    table = read(out / "manifest.csv")
    dataset = load(out, tmp_path / "cache")
    assert len(dataset) == 60 == len(table)
    assert {"image", "prompt", "seed", "stage", "model", "upstream_job_id"} <= set(dataset.column_names)
    rows = {r["job_id"]: r for r in dataset.remove_columns("image")}
    for job, _ in jobs:
        assert rows[job.id]["prompt"] == job.prompt and rows[job.id]["seed"] == job.seed
        assert rows[job.id]["stage"] == job.stage
    for name in (r["file_name"] for r in table):
        assert "test" not in name.replace("=test", "") and "train" not in name.replace("=train", "")


def test_more_than_ten_thousand_rows_and_a_column_only_later_rows_fill(tmp_path: Path) -> None:
    # 10,500 generations, then edits of the first 1,500: the loader typed a CSV's columns from its first
    # 10,000 rows, so upstream_job_id and the edits' input image (empty there) failed the load; and a
    # prompt "None" came back null, "007" as the number 7.
    bases, edits = [], []
    for i in range(10500):
        inp: dict[str, object] = {"prompt": HOSTILE[i % len(HOSTILE)], "seed": i}
        base = Job(job_id(SCHNELL, None, inp), "gen", SCHNELL, None, inp, {"n": str(i)})
        edit_input: dict[str, object] = {"prompt": "gold", "seed": i, "input_image": upstream_ref(base.id)}
        bases.append(base)
        if i < 1500:
            edits.append(Job(job_id(KONTEXT, None, edit_input, (base.id,)), "edit", KONTEXT, None, edit_input,
                             {"n": str(i)}, (base.id,)))  # fmt: skip
    out = tmp_path / "out"
    store = Store.open(out)
    store.begin_ingest()
    store.add_jobs((j, 0.01) for j in bases + edits)
    store.prepare_run()
    succeed_all(store, bases + edits)
    png = _png()
    for job in bases + edits:
        path = out / "images" / job.stage / f"{job.id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    try:
        assert write_tables(store, out) == (12000, 12000)
    finally:
        store.close()
    dataset = load(out, tmp_path / "cache").remove_columns("image")
    assert len(dataset) == 12000
    by_id = {r["job_id"]: r for r in dataset}
    for base in bases:
        assert by_id[base.id]["prompt"] == base.prompt and by_id[base.id]["upstream_job_id"] is None
    for base, edit in zip(bases, edits, strict=False):
        assert by_id[edit.id]["upstream_job_id"] == base.id
        assert by_id[edit.id]["input_input_image"] == f"images/gen/{base.id}.png"
