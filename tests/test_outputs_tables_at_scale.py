"""manifest.csv and metadata.parquet are exact at scale: one row per image (or per job without one), whatever
the batch and chunk sizes the tables are read in."""

from __future__ import annotations

import csv
from pathlib import Path

from runner_harness import base_jobs, run, simulator

from flux_batch.jobs import Job, upstream_ref
from flux_batch.jobs.ids import job_id
from flux_batch.outputs.tables import write_tables
from flux_batch.runner.state.store import Store


def _job(stage: str, prompt: str, seed: int, needs: tuple[str, ...] = ()) -> Job:
    inp: dict[str, object] = {"prompt": prompt, "seed": seed}
    if needs:
        inp["input_image"] = upstream_ref(needs[0])
    return Job(job_id("a/b", None, inp, needs), stage, "a/b", None, inp, {"n": str(seed)}, needs)


def succeed_all(store: Store, jobs: list[Job]) -> None:
    """Every job succeeded with one image, ``images/<stage>/<id>.png`` (written as the runner's steps
    leave it, in one transaction: thousands of fsynced intents would make the test slow)."""
    with store._tx() as db:
        db.executemany(
            "UPDATE jobs SET status = 'succeeded', prediction_id = ?, attempts = 1 WHERE id = ?",
            [(f"p{j.id}", j.id) for j in jobs],
        )
        db.executemany(
            "INSERT INTO outputs (job_id, idx, url, url_until, file_name, sha256, bytes, width, height)"
            " VALUES (?, 0, 'http://x/a.png', 9e9, ?, ?, 10, 4, 4)",
            [(j.id, f"images/{j.stage}/{j.id}.png", "ab" * 32) for j in jobs],
        )


def chain_state(out: Path, n: int) -> tuple[Store, list[Job]]:
    """``n`` generations each edited once, in the interleaved order a chain manifest expands to."""
    jobs: list[Job] = []
    for i in range(n):
        base = _job("base", f"cat {i}", i)
        jobs += [base, _job("edit", f"gold cat {i}", i, needs=(base.id,))]
    store = Store.open(out)
    store.begin_ingest()
    store.add_jobs((j, 0.01) for j in jobs)
    store.prepare_run()
    succeed_all(store, jobs)
    return store, jobs


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_stages_over_500_jobs_give_one_row_per_image(tmp_path: Path) -> None:
    # 300 + 300 jobs: the upstream ids of a batch were looked up beside the batch's own ids in chunks of
    # 500, and an id in two chunks came back twice (900 rows for 600 images).
    store, jobs = chain_state(tmp_path, 300)
    try:
        rows, images = write_tables(store, tmp_path)
    finally:
        store.close()
    manifest = read(tmp_path / "manifest.csv")
    assert (rows, images) == (600, 600)
    assert len(manifest) == 600 and sorted(r["job_id"] for r in manifest) == sorted(j.id for j in jobs)
    assert len({r["file_name"] for r in manifest}) == 600
    by_id = {r["job_id"]: r for r in manifest}
    for job in jobs[1::2]:  # every edit names its own upstream image
        assert by_id[job.id]["input_input_image"] == f"images/base/{job.needs[0]}.png"


def test_outputs_of_returns_each_output_once_for_repeated_ids(tmp_path: Path) -> None:
    store, jobs = chain_state(tmp_path, 400)
    try:
        ids = [j.id for j in jobs]
        found = store.outputs_of(ids + ids[::-1] + ids)  # the same ids in several chunks
    finally:
        store.close()
    assert len(found) == 800 and all(len(outputs) == 1 for outputs in found.values())


async def test_a_killed_runs_temporary_tables_are_removed_by_the_next_run(tmp_path: Path) -> None:
    for name in (".manifest.csv.tmp", ".metadata.parquet.tmp", ".run.json.tmp"):
        (tmp_path / name).write_text("half a table")
    await run(simulator(), base_jobs(2), tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_job_whose_download_failed_has_a_row_but_no_image_row(tmp_path: Path) -> None:
    # Paid for, its prediction kept for the next run to download: manifest.csv lists it (with its cost and
    # error), the dataset does not, even when one of its files had been recorded before the failure.
    import pyarrow.parquet as pq

    store, jobs = chain_state(tmp_path, 3)
    failed = jobs[2]
    try:
        with store._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'download_failed', cost_usd = 0.01, error = 'HTTP 404'"
                " WHERE id = ?",
                (failed.id,),
            )
        rows, images = write_tables(store, tmp_path)
    finally:
        store.close()
    assert (rows, images) == (6, 5)
    manifest = {r["job_id"]: r for r in read(tmp_path / "manifest.csv")}
    assert manifest[failed.id]["status"] == "download_failed" and manifest[failed.id]["cost_usd"] == "0.01"
    listed = pq.read_table(tmp_path / "metadata.parquet").column("job_id").to_pylist()
    assert sorted(listed) == sorted(j.id for j in jobs if j is not failed)
