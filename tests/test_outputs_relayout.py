"""A folder made by an older version (images named ``images/<stage>/<slug>-<id>.<ext>``) resumes: its images
move to the current layout, nothing is created or downloaded again, and a crash halfway loses nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from runner_harness import chain_jobs, run, simulator
from test_outputs_tables_at_scale import read

from flux_batch.outputs.layout import in_layout
from flux_batch.outputs.relayout import relayout
from flux_batch.report.thumbnails import thumb_path_for
from flux_batch.runner.state.store import Store


def make_old(out: Path) -> dict[str, str]:
    """Move a finished folder's images (and thumbnails) to the old names; returns old name -> sha256."""
    db = sqlite3.connect(out / "state.db", isolation_level=None)
    old: dict[str, str] = {}
    rows = db.execute(
        "SELECT o.job_id, o.idx, o.file_name, o.sha256, j.stage FROM outputs o JOIN jobs j ON j.id = o.job_id"
    ).fetchall()
    for job_id, idx, name, sha, stage in rows:
        former = f"images/{stage}/a-test-cat-{job_id}{Path(name).suffix}"  # a slug with a split word
        (out / former).parent.mkdir(parents=True, exist_ok=True)
        (out / name).rename(out / former)
        (out / thumb_path_for(former)).parent.mkdir(parents=True, exist_ok=True)
        (out / thumb_path_for(name)).rename(out / thumb_path_for(former))
        db.execute(
            "UPDATE outputs SET file_name = ?, thumb = ? WHERE job_id = ? AND idx = ?",
            (former, thumb_path_for(former), job_id, idx),
        )
        old[former] = sha
    db.close()
    return old


def assert_current(out: Path) -> None:
    rows = [r for r in read(out / "manifest.csv") if r["file_name"]]
    assert rows
    for r in rows:
        assert in_layout(r["file_name"], r["stage"], r["job_id"], 0), r["file_name"]
        assert hashlib.sha256((out / r["file_name"]).read_bytes()).hexdigest() == r["sha256"]
        assert (out / thumb_path_for(r["file_name"])).is_file()
    assert not list(out.glob("images/*/a-test-cat-*")) and not list(out.glob(".thumbs/*/a-test-cat-*"))


async def test_an_old_folder_resumes_into_the_new_layout_without_paying_again(tmp_path: Path) -> None:
    sim = simulator()
    assert (await run(sim, chain_jobs(4), tmp_path)).counts == {"succeeded": 8}
    make_old(tmp_path)
    created = sim.stats()["predictions_created"]
    result = await run(sim, chain_jobs(4), tmp_path)
    assert result.counts == {"succeeded": 8}
    assert sim.stats()["predictions_created"] == created
    assert result.summary["api_calls"]["download"] == 0
    assert_current(tmp_path)
    assert not (tmp_path / "images/base").exists()  # emptied old folders are removed


async def test_a_crash_between_moving_and_recording_loses_nothing(tmp_path: Path) -> None:
    sim = simulator()
    await run(sim, chain_jobs(3), tmp_path)
    old = make_old(tmp_path)
    store = Store.open(tmp_path)
    store.move_files = lambda moves: None  # type: ignore[method-assign]  # the files move; the state does not
    relayout(store, tmp_path)
    store.close()
    assert all(not (tmp_path / name).exists() for name in old)
    created = sim.stats()["predictions_created"]
    result = await run(sim, chain_jobs(3), tmp_path)  # finds them at their new names
    assert result.counts == {"succeeded": 6} and result.summary["api_calls"]["download"] == 0
    assert sim.stats()["predictions_created"] == created
    assert_current(tmp_path)
