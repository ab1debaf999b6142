"""The human `status` summary: a live rate and ETA only while a run is going; otherwise what is left."""

from __future__ import annotations

from flux_batch.runner.status import FolderStatus, render


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
