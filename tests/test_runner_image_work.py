"""Thumbnails and quality values made off the run's hot path (runner/image_work.py, outputs/derived.py):
what a killed run left unknown is made by the next run or by the report, never taken as made, and the
tables, the report and the state come out as if nothing had been interrupted."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import write_manifest
from export_folder import build_folder
from PIL import Image
from test_quality_summary import report_rows

from flux_batch.cli import main
from flux_batch.outputs.derived import WORKER_NICENESS, derive, new_pool
from flux_batch.outputs.quality import inspect_image
from flux_batch.outputs.tables import write_tables
from flux_batch.report import write_report
from flux_batch.report.contact_sheet import PENDING_FILL
from flux_batch.report.thumbnails import thumb_path_for
from flux_batch.runner.image_work import ImageWork
from flux_batch.runner.state.store import STATE_FILE, Store


def _outputs(out: Path) -> list[tuple[str, str | None, str | None, str | None]]:
    db = sqlite3.connect(out / STATE_FILE)
    try:
        return db.execute("SELECT file_name, phash, flags, thumb FROM outputs ORDER BY rowid").fetchall()
    finally:
        db.close()


def _killed_before_its_images_were_done(out: Path) -> None:
    """What a run killed after its downloads, before their thumbnails and quality values were recorded,
    leaves: values unknown in the state, no thumbnails (one half-written under its temporary name), and
    the tables of its last checkpoint."""
    db = sqlite3.connect(out / STATE_FILE)
    db.execute("UPDATE outputs SET phash = NULL, flags = NULL, thumb = NULL")
    db.commit()
    db.close()
    for thumb in (out / ".thumbs").rglob("*.webp"):
        thumb.unlink()
    first = _outputs(out)[0][0]
    half = out / thumb_path_for(first)
    half.parent.mkdir(parents=True, exist_ok=True)
    half.with_name(f".{half.name}.123-456.tmp").write_bytes(b"RIFF\x00\x01")
    store = Store.open(out)
    write_tables(store, out)
    store.close()


def test_the_next_run_makes_what_a_killed_run_left_unknown_and_the_tables_come_out_exact(
    tmp_path: Path,
) -> None:
    folder = build_folder(tmp_path / "out", 24, blank=2, wrong_size=1, duplicates=3)
    expected_table = (folder.out / "manifest.csv").read_text()
    expected = [(name, phash, flags) for name, phash, flags, _ in _outputs(folder.out)]
    _killed_before_its_images_were_done(folder.out)
    assert all(flags is None for _, _, flags, _ in _outputs(folder.out))
    assert (folder.out / "manifest.csv").read_text() != expected_table

    async def next_run() -> int:  # what run_jobs does with them: queued at its start, waited for at its end
        store = Store.open(folder.out)
        try:
            work = ImageWork(store, folder.out)
            queued = work.load_unknown()
            await work.drain()
            write_tables(store, folder.out)
            return queued
        finally:
            store.close()

    assert asyncio.run(next_run()) == 24
    found = _outputs(folder.out)
    assert [(name, phash, flags) for name, phash, flags, _ in found] == expected
    assert (folder.out / "manifest.csv").read_text() == expected_table
    for name, _, _, thumb in found:
        assert thumb == thumb_path_for(name)
        with Image.open(folder.out / thumb) as image:
            assert image.format == "WEBP" and max(image.size) <= 256


@pytest.mark.parametrize(
    "n", [12, pytest.param(40, marks=pytest.mark.slow)], ids=["in-process", "worker-processes"]
)
def test_the_report_of_a_killed_run_makes_its_thumbnails_and_shows_every_flag(tmp_path: Path, n: int) -> None:
    # past POOL_FROM images, the report hands the rest to worker processes
    folder = build_folder(tmp_path / "out", n, blank=2, wrong_size=1, duplicates=3)
    write_report(folder.out)
    complete = report_rows(folder.out)
    assert sum(1 for row in complete if row["flags"]) == 6
    _killed_before_its_images_were_done(folder.out)
    (folder.out / "report.html").unlink()

    write_report(folder.out)
    assert report_rows(folder.out) == complete  # the same flags, near-duplicates and thumbnails
    for row in complete:
        assert (folder.out / str(row["thumb"])).stat().st_size > 0
    assert "3 flagged: 2 blank, 1 wrong size; 3 near-duplicates" in (folder.out / "report.html").read_text()


def test_a_value_made_for_a_file_since_downloaded_again_is_not_recorded(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "out", 2)
    _killed_before_its_images_were_done(folder.out)
    store = Store.open(folder.out)
    try:
        (job_id, idx, name, _), second = store.unknown_quality()
        store.record_quality([(None, "ab" * 8, "", job_id, idx, name, "00" * 32)])  # another file's hash
        store.record_quality([(None, "cd" * 8, "blank", *second)])
        assert [(job, i) for job, i, _, _ in store.unknown_quality()] == [(job_id, idx)]
    finally:
        store.close()


def test_one_decode_gives_the_quality_of_inspect_image_and_a_thumbnail(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "out", 3, blank=1)
    for name, _, _, _ in _outputs(folder.out):
        made = derive(str(folder.out), name, True)
        assert made is not None and made.thumb == thumb_path_for(name)
        found = inspect_image((folder.out / name).read_bytes())
        assert (made.phash, made.flags) == (found.phash, found.flag_text)
    (folder.out / "images" / "=gen" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    broken = derive(str(folder.out), "images/=gen/broken.png", True)
    assert broken is not None and (broken.thumb, broken.phash, broken.flags) == (None, None, "undecodable")
    assert derive(str(folder.out), "images/=gen/gone.png", True) is None


def test_a_thumbnail_that_cannot_be_written_never_loses_the_quality(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "out", 1)
    name, phash, flags, _ = _outputs(folder.out)[0]
    (folder.out / ".thumbs").mkdir(exist_ok=True)
    (folder.out / ".thumbs" / "=gen").write_text("a file where the folder should be")
    made = derive(str(folder.out), name, True)
    assert made is not None and (made.thumb, made.phash, made.flags) == (None, phash, flags)
    assert made.error and "thumbnail" in made.error


def test_a_run_records_every_image_s_quality_and_thumbnail(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(write_manifest(tmp_path / "m.yaml")), "--simulator", "--out", str(out)]) == 0
    found = _outputs(out)
    assert len(found) == 4
    for name, phash, flags, thumb in found:
        quality = inspect_image((out / name).read_bytes())
        assert (phash, flags) == (quality.phash, quality.flag_text)
        assert thumb == thumb_path_for(name) and (out / thumb).stat().st_size > 0


@pytest.mark.slow  # starts a worker process
def test_image_workers_run_below_the_runner_s_priority() -> None:
    """The run's pace comes first: a worker making thumbnails and quality values must not take CPU time
    from the runner (or a simulator beside it) while they have work. Before, workers ran at the runner's
    own priority."""
    pool = new_pool(1)
    try:
        worker = pool.submit(os.nice, 0).result(timeout=60)
    finally:
        pool.shutdown()
    assert worker >= min(19, os.nice(0) + WORKER_NICENESS)
    assert worker > os.nice(0) or os.nice(0) == 19


def test_a_stopped_runs_report_makes_nothing_and_shows_the_images(tmp_path: Path) -> None:
    # An interrupted run's end waited 10 minutes at 100,000 jobs while its report made the 65,000
    # thumbnails a starved worker had not: its user, who pressed Ctrl-C, waits for it to exit.
    folder = build_folder(tmp_path / "out", 12)
    _killed_before_its_images_were_done(folder.out)
    write_report(folder.out, make_missing=False)
    assert not list((folder.out / ".thumbs").rglob("*.webp"))
    shown = {row["file_name"]: row["thumb"] for row in report_rows(folder.out)}
    assert len(shown) == 12 and all(thumb == name for name, thumb in shown.items())  # the image itself
    sheets = list(folder.out.glob("grid_*.png"))
    assert sheets
    for sheet in sheets:  # drawn from the images: no cell left as a placeholder
        with Image.open(sheet) as image:
            assert PENDING_FILL not in {color for _, color in image.convert("RGB").getcolors(1 << 24)}
    write_report(folder.out)  # the next report makes them
    assert len(list((folder.out / ".thumbs").rglob("*.webp"))) == 12


def test_the_number_of_cores_is_read_once_not_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How many images go to the workers at once depends on the cores, which the C library reads from
    /sys at every call: read when the work starts (before: at every image queued and every image done)."""
    calls: list[int] = []
    real = os.cpu_count

    def cpu_count() -> int | None:
        calls.append(1)
        return real()

    class Unmade(Executor):  # every image comes back unreadable at once: only the queueing is measured
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future: Future[Any] = Future()
            future.set_result(None)
            return future

    async def queue_50() -> int:
        store = Store.open(tmp_path)
        try:
            monkeypatch.setattr(os, "cpu_count", cpu_count)
            work = ImageWork(store, tmp_path, pool=Unmade)
            for i in range(50):
                work.add("job", i, f"images/a/{i}.png", "ab" * 32)
            await work.drain()
            return work.pending
        finally:
            store.close()

    assert asyncio.run(queue_50()) == 0
    assert len(calls) == 1
