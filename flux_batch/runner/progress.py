"""Progress of a run, as events sent to a callback and a tracker the caller may read at its own pace.

The library never prints. The executor calls ``on_event(event, tracker)`` when a job changes status or
something worth telling happens (a notice: throttling, stopping, the budget); the CLI turns that into tqdm
bars, a plain line every few seconds, or nothing. Counts use the public statuses of manifest.csv.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flux_batch.jobs.status import DONE, IN_PROGRESS, JobStatus, fold_counts, public


@dataclass(frozen=True)
class Event:
    """``kind`` is ``"job"`` (``job_id`` moved to ``status``) or ``"notice"`` (``message`` for a human)."""

    kind: str
    stage: str = ""
    job_id: str = ""
    status: str = ""
    message: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Where the run stands: counts by stage and public status, and the figures a progress line shows."""

    counts: Mapping[str, Mapping[str, int]]
    total: int
    done: int
    succeeded: int
    failed: int
    in_flight: int
    spent_usd: float
    elapsed_s: float
    rate_per_s: float
    eta_s: float | None
    throttled: int = 0
    stages: tuple[str, ...] = field(default=())


class Tracker:
    """Counts kept up to date by the executor (no database query per event)."""

    def __init__(
        self,
        counts: Mapping[str, Mapping[str, int]],
        *,
        clock: Callable[[], float] = time.monotonic,
        spent_usd: float = 0.0,
        window_s: float = 30.0,
    ) -> None:
        self._clock = clock
        self.started = clock()
        self.counts: dict[str, dict[str, int]] = {
            stage: fold_counts(dict(by_status)) for stage, by_status in counts.items()
        }
        self.spent_usd = spent_usd
        self.throttled = 0
        self._finished: deque[float] = deque()
        self._window = window_s

    def move(self, stage: str, old: str, new: str, n: int = 1) -> None:
        old, new = public(old), public(new)
        if old == new:
            return
        bucket = self.counts.setdefault(stage, {})
        bucket[old] = bucket.get(old, 0) - n
        bucket[new] = bucket.get(new, 0) + n
        if new in DONE and old not in DONE:
            now = self._clock()
            self._finished.extend([now] * min(n, 1000))
            self._forget(now)  # also without a progress view reading snapshots: a float a job otherwise

    def _forget(self, now: float) -> None:
        """Drop the finishing times older than the rate's window."""
        while self._finished and self._finished[0] < now - self._window:
            self._finished.popleft()

    def snapshot(self) -> Snapshot:
        now = self._clock()
        self._forget(now)
        total = sum(sum(v for v in by.values()) for by in self.counts.values())
        done = sum(by.get(s, 0) for by in self.counts.values() for s in DONE)
        busy = {public(s) for s in IN_PROGRESS}
        in_flight = sum(by.get(s, 0) for by in self.counts.values() for s in busy)
        span = min(self._window, now - self.started)
        rate = len(self._finished) / span if span > 0.5 else 0.0
        left = total - done
        return Snapshot(
            counts={k: dict(v) for k, v in self.counts.items()},
            total=total,
            done=done,
            succeeded=sum(by.get(JobStatus.SUCCEEDED, 0) for by in self.counts.values()),
            failed=sum(by.get(s, 0) for by in self.counts.values() for s in DONE if s != JobStatus.SUCCEEDED),
            in_flight=in_flight,
            spent_usd=self.spent_usd,
            elapsed_s=now - self.started,
            rate_per_s=rate,
            eta_s=(left / rate) if rate > 0 else (0.0 if left == 0 else None),
            throttled=self.throttled,
            stages=tuple(self.counts),
        )


OnEvent = Callable[[Event, Tracker], None]


def ignore(event: Event, tracker: Tracker) -> None:
    """The default callback: nothing."""
