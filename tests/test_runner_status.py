"""The human `status` summary: a live rate and ETA only while a run is going; otherwise what is left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from runner_harness import SCHNELL, make_job

from flux_batch.runner.lock import LOCK_FILE
from flux_batch.runner.state.store import Store
from flux_batch.runner.status import FolderStatus, folder_status, render


def _status(*, running: int | None, done: int, jobs: int = 12) -> FolderStatus:
    return FolderStatus(
        out_dir="out/q",
        running_pid=running,
        stages={"sketch": {"succeeded": done, "pending": jobs - done}},
        totals={"succeeded": done, "pending": jobs - done},
        jobs=jobs,
        done=done,
        spent_usd=0.036,
        rate_per_min=120.0 if running else 0.0,
        eta_s=3.0 if running else None,
        errors=[],
        started_at=None,
    )


def test_a_running_folder_shows_rate_and_eta() -> None:
    text = render(_status(running=4242, done=6))
    assert "running (pid 4242)" in text
    assert "rate 120.0 jobs/min; ETA 3s" in text


def test_a_finished_folder_says_all_done_without_a_rate() -> None:
    text = render(_status(running=None, done=12))
    assert text.splitlines()[-1] == "  spent $0.04 (estimated at model prices); all done"
    assert "rate" not in text and "ETA" not in text


def test_an_interrupted_folder_says_how_many_are_left() -> None:
    text = render(_status(running=None, done=5))
    assert "7 left: run again to resume" in text and "ETA" not in text


def _folder(out: Path, *, started: float, finished: list[float], pending: int) -> None:
    """A folder whose run (this process, holding the lock's record) started at ``started`` and finished
    one job at each time of ``finished``; ``pending`` jobs are left."""
    now = [started]
    store = Store.open(out, clock=lambda: now[0])
    jobs = [make_job(SCHNELL, "s", f"cat {i}", i) for i in range(len(finished) + pending)]
    store.begin_ingest()
    store.add_jobs((j, 0.01) for j in jobs)
    store.prepare_run()
    for job, at in zip(jobs, finished, strict=False):
        now[0] = at - 0.5
        store.begin_attempt(job.id, dict(job.input), intent_at=at - 0.5)
        now[0] = at
        store.mark_failed(job.id, "failed", "boom")  # any terminal end counts as finished
    store.close()
    (out / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": "h", "started_at": started}))


def test_the_rate_in_a_runs_first_minutes_counts_only_the_time_it_has_run(tmp_path: Path) -> None:
    # 30 jobs in the run's first 30 s: 60 a minute. A fixed 120 s window said 15 a minute and an ETA
    # four times too long.
    t0 = 1_750_000_000.0
    _folder(tmp_path, started=t0, finished=[t0 + 1 + i for i in range(30)], pending=60)
    status = folder_status(tmp_path, wall_clock=lambda: t0 + 30.5)
    assert status.running_pid == os.getpid()
    assert status.rate_per_min == pytest.approx(60.0, rel=0.05)
    assert status.eta_s == pytest.approx(60.0, rel=0.05)


def test_the_rate_of_a_long_run_is_over_the_last_two_minutes(tmp_path: Path) -> None:
    t0 = 1_750_000_000.0
    # 10 jobs early on, then 60 in the last 120 s (30 a minute).
    finished = [t0 + 1 + i for i in range(10)] + [t0 + 602 + 2 * i for i in range(60)]
    _folder(tmp_path, started=t0, finished=finished, pending=30)
    status = folder_status(tmp_path, wall_clock=lambda: t0 + 722)
    assert status.rate_per_min == pytest.approx(30.0, rel=0.05)


def test_status_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    # A read-only status of a folder nobody runs in created state.db-wal and state.db-shm beside it.
    _folder(tmp_path, started=1_750_000_000.0, finished=[1_750_000_001.0], pending=1)
    (tmp_path / LOCK_FILE).unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert "state.db-wal" not in before
    status = folder_status(tmp_path)
    assert status.jobs == 2 and status.running_pid is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before
