"""Where a job stands: one :class:`JobStatus` enum and the few sets of statuses the rest of flux-batch asks
about, defined here once.

A job moves ``pending`` -> ``submitting`` (intent recorded, no prediction id yet) -> ``submitted`` ->
``running`` -> ``downloading`` (the prediction succeeded, its files are not all here) -> ``succeeded``; or
ends ``failed``, ``canceled`` or ``aborted`` (the API's word), ``expired`` (the output was gone before it
was downloaded), ``skipped`` (a job it needs did not succeed) or ``download_failed`` (paid for, its output
still with the API, not downloaded in this run: the next run downloads it, creating nothing).

Two of these are the runner's own bookkeeping and never shown: ``submitting`` is shown as ``submitted`` and
``downloading`` as ``running`` (:func:`public`), in ``manifest.csv``, ``status`` and progress events.

The members are strings (``JobStatus.SUCCEEDED == "succeeded"``), so they go into SQLite, JSON and CSV as
they are and a status read back from any of them compares equal to its member.
"""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """A job's status, as stored in the state and (folded by :func:`public`) shown to users.

    >>> JobStatus("succeeded") is JobStatus.SUCCEEDED
    True
    >>> JobStatus.SUBMITTING.public
    'submitted'
    """

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    DOWNLOAD_FAILED = "download_failed"

    def __str__(self) -> str:
        return self.value

    @property
    def public(self) -> str:
        """How this status is shown (``submitting`` as ``submitted``, ``downloading`` as ``running``)."""
        return public(self.value)

    @property
    def done(self) -> bool:
        """True when this run is finished with the job (successfully or not)."""
        return self in DONE


S = JobStatus

#: A prediction may exist and is not finished with: a resume re-attaches or reconciles these.
IN_PROGRESS: frozenset[JobStatus] = frozenset({S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.DOWNLOADING})
#: The API's own unsuccessful ends: run again with ``--retry-failed``.
FAILED: frozenset[JobStatus] = frozenset({S.FAILED, S.CANCELED, S.ABORTED})
#: A run is finished with the job: it counts as done in progress, ETA and the report.
DONE: frozenset[JobStatus] = frozenset({S.SUCCEEDED, *FAILED, S.EXPIRED, S.SKIPPED, S.DOWNLOAD_FAILED})
#: Done without an image to show: the report's failure cells.
UNSUCCESSFUL: frozenset[JobStatus] = DONE - {S.SUCCEEDED}
#: The prediction was paid for (it succeeded at the API), whether or not its files are here yet.
PAID: frozenset[JobStatus] = frozenset({S.SUCCEEDED, S.DOWNLOADING, S.DOWNLOAD_FAILED})
#: A *prediction's* terminal statuses at the API (not a job's: a job has more ways to end).
PREDICTION_TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled", "aborted"})

#: The runner's bookkeeping statuses, and what they are shown as.
_PUBLIC_NAME = {S.SUBMITTING.value: S.SUBMITTED.value, S.DOWNLOADING.value: S.RUNNING.value}
#: The statuses users see, in the order ``status`` lists them.
PUBLIC_ORDER: tuple[JobStatus, ...] = (
    S.SUCCEEDED,
    S.FAILED,
    S.CANCELED,
    S.ABORTED,
    S.EXPIRED,
    S.DOWNLOAD_FAILED,
    S.SKIPPED,
    S.RUNNING,
    S.SUBMITTED,
    S.PENDING,
)


def public(status: str) -> str:
    """The status as users see it: ``submitting`` -> ``submitted``, ``downloading`` -> ``running``, any
    other unchanged (an unknown string too: an older or newer state may hold one)."""
    return _PUBLIC_NAME.get(str(status), str(status))


def fold_counts(counts: dict[str, int] | None = None, *more: dict[str, int]) -> dict[str, int]:
    """Counts by status with the bookkeeping statuses folded into the ones users see.

    >>> fold_counts({"submitting": 1, "submitted": 2, "succeeded": 3})
    {'submitted': 3, 'succeeded': 3}
    """
    folded: dict[str, int] = {}
    for by_status in (counts or {}, *more):
        for status, n in by_status.items():
            name = public(status)
            folded[name] = folded.get(name, 0) + n
    return folded
