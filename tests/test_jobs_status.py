"""The one place job statuses and their sets are defined."""

from __future__ import annotations

from flux_batch.jobs.status import (
    DONE,
    FAILED,
    IN_PROGRESS,
    PAID,
    PREDICTION_TERMINAL,
    PUBLIC_ORDER,
    UNSUCCESSFUL,
    JobStatus,
    fold_counts,
    public,
)


def test_every_status_is_pending_in_progress_or_done() -> None:
    assert {JobStatus.PENDING} | IN_PROGRESS | DONE == set(JobStatus)
    assert not IN_PROGRESS & DONE


def test_the_sets_nest() -> None:
    assert FAILED < UNSUCCESSFUL < DONE
    assert DONE - {JobStatus.SUCCEEDED} == UNSUCCESSFUL
    assert JobStatus.SUCCEEDED in PAID and JobStatus.DOWNLOAD_FAILED in PAID
    # a prediction ends in fewer ways than a job
    assert {"succeeded", *FAILED} == PREDICTION_TERMINAL


def test_public_folds_the_bookkeeping_statuses_and_keeps_the_rest() -> None:
    assert public("submitting") == "submitted"
    assert public(JobStatus.DOWNLOADING) == "running"
    assert public("succeeded") == "succeeded"
    assert public("from-a-newer-version") == "from-a-newer-version"
    assert {public(s) for s in JobStatus} == set(PUBLIC_ORDER)


def test_fold_counts_adds_up_every_mapping() -> None:
    assert fold_counts({"submitting": 2, "submitted": 1}, {"downloading": 4, "running": 1}) == {
        "submitted": 3,
        "running": 5,
    }
    assert fold_counts() == {}


def test_members_are_their_strings() -> None:
    assert JobStatus("failed") is JobStatus.FAILED
    assert JobStatus.FAILED == "failed"
    assert f"{JobStatus.FAILED}" == "failed"
    assert {"failed": 1}[JobStatus.FAILED] == 1
