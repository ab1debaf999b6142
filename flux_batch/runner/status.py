"""The ``status`` summary of an output folder: progress by stage and status, spend, rate, ETA, errors.

It reads the state database through a read-only connection, so it works while a run is writing to it
(WAL allows one writer and many readers) and after the run has ended.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_batch.durations import format_duration
from flux_batch.errors import StateError, UsageError
from flux_batch.jobs.status import DONE, PUBLIC_ORDER, fold_counts
from flux_batch.outputs.tables import read_run_json
from flux_batch.runner.lock import LOCK_FILE, pid_alive, read_holder
from flux_batch.runner.state import queries
from flux_batch.runner.state.store import STATE_FILE, open_readonly

#: The rate is over the last two minutes, or since the run's first create if that is more recent (but
#: never over less than a second, where one job would make a wild rate).
RATE_WINDOW_S = 120.0
MIN_WINDOW_S = 1.0


@dataclass(frozen=True)
class FolderStatus:
    out_dir: str
    running_pid: int | None
    stages: dict[str, dict[str, int]]
    totals: dict[str, int]
    jobs: int
    done: int
    spent_usd: float
    rate_per_min: float
    eta_s: float | None
    errors: list[dict[str, Any]]
    started_at: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def folder_status(out_dir: Path, *, wall_clock: Callable[[], float] = time.time) -> FolderStatus:
    """The status of ``out_dir``; UsageError if it holds no flux-batch state."""
    db = open_readonly(out_dir)
    if db is None:
        raise UsageError(f"{out_dir} has no {STATE_FILE}: not a flux-batch output folder (or not run yet)")
    now = wall_clock()
    holder = read_holder(out_dir / LOCK_FILE)
    running = holder.pid if holder is not None and pid_alive(holder.pid) else None
    try:
        stages = {stage: fold_counts(by) for stage, by in queries.counts(db).items()}
        spent = queries.spent_usd(db)
        since = now - RATE_WINDOW_S
        if holder is not None and running is not None:
            # In a run's first minutes the window is the time since its first create, not 120 s.
            (first,) = db.execute(
                "SELECT MIN(intent_at) FROM attempts WHERE intent_at >= ?", (holder.started_at,)
            ).fetchone()
            since = max(since, first if first is not None else now)
        recent = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE live = 1 AND finished_at >= ?", (since,)
        ).fetchone()[0]
        errors = [
            {"at": at, "job_id": job_id, "message": message}
            for at, job_id, message in db.execute(
                "SELECT finished_at, id, error FROM jobs WHERE live = 1 AND error IS NOT NULL AND status IN"
                " ('failed', 'canceled', 'aborted', 'expired', 'download_failed') ORDER BY finished_at DESC"
                " LIMIT 5"
            )
        ]
        errors += [
            {"at": at, "job_id": job_id, "message": message}
            for at, job_id, message in db.execute(
                "SELECT at, job_id, message FROM errors ORDER BY at DESC LIMIT 5"
            )
        ]
    except sqlite3.Error as exc:
        raise StateError(f"{out_dir / STATE_FILE}: cannot read the state ({exc})") from exc
    finally:
        db.close()
    totals: dict[str, int] = {}
    for by_status in stages.values():
        for status, n in by_status.items():
            totals[status] = totals.get(status, 0) + n
    jobs = sum(totals.values())
    done = sum(totals.get(s, 0) for s in DONE)
    rate = recent / max(now - since, MIN_WINDOW_S) * 60.0
    left = jobs - done
    eta = None if not running or rate <= 0 else left / rate * 60.0
    run = read_run_json(out_dir) or {}
    errors.sort(key=lambda e: e["at"] or 0, reverse=True)
    return FolderStatus(
        out_dir=str(out_dir),
        running_pid=running,
        stages=stages,
        totals=totals,
        jobs=jobs,
        done=done,
        spent_usd=round(float(spent or 0.0), 6),
        rate_per_min=round(rate, 2),
        eta_s=round(eta, 1) if eta is not None else (0.0 if left == 0 else None),
        errors=errors[:8],
        started_at=(run.get("summary") or {}).get("started_at"),
    )


def render(status: FolderStatus) -> str:
    """The human-readable summary, a few lines."""
    state = f"running (pid {status.running_pid})" if status.running_pid else "not running"
    lines = [f"{status.out_dir}: {status.done}/{status.jobs} jobs done, {state}"]
    for stage, counts in status.stages.items():
        parts = [f"{counts[s]} {s}" for s in PUBLIC_ORDER if counts.get(s)]
        lines.append(f"  {stage}: " + ", ".join(parts))
    spent = f"spent ${status.spent_usd:.2f} (estimated at model prices)"
    if status.running_pid:
        eta = "unknown" if status.eta_s is None else format_duration(status.eta_s)
        lines.append(f"  {spent}; rate {status.rate_per_min:.1f} jobs/min; ETA {eta}")
    else:
        left = status.jobs - status.done
        lines.append(f"  {spent}; " + ("all done" if left == 0 else f"{left} left: run again to resume"))
    if status.errors:
        lines.append("  recent errors:")
        for err in status.errors[:5]:
            who = f"job {err['job_id']}: " if err["job_id"] else ""
            lines.append(f"    {who}{err['message']}")
    return "\n".join(lines)
