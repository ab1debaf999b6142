"""Questions asked of a run's state without changing it: counts by stage and status, the spend, the
folder's owner, the done counts ``plan`` shows, recent errors. Apart from the store's write-ahead steps
(:mod:`flux_batch.runner.state.store`), so that ``status``, ``plan`` and the tables read through the one
read-only open (:func:`flux_batch.runner.state.store.open_readonly`), safe beside a running run (WAL). Each
takes a connection and returns plain data.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from flux_batch.jobs.status import fold_counts
from flux_batch.runner.state.migrations import current_version

#: Estimated spend: every prediction that succeeded, at its job's price (all runs on the folder).
SPENT_SQL = (
    "SELECT SUM(j.cost_usd) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.outcome = 'succeeded'"
)


def counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Live jobs by stage (in manifest order) and (internal) status."""
    out: dict[str, dict[str, int]] = {}
    for stage, status, n in db.execute(
        "SELECT stage, status, COUNT(*) FROM jobs WHERE live = 1 GROUP BY stage, status ORDER BY MIN(seq)"
    ):
        out.setdefault(stage, {})[status] = n
    return out


def spent_usd(db: sqlite3.Connection) -> float:
    """Estimated spend so far: every prediction that succeeded, at its job's price (all runs)."""
    return float(db.execute(SPENT_SQL).fetchone()[0] or 0.0)


def meta(db: sqlite3.Connection, key: str) -> Any:
    """A JSON value of the ``meta`` table (None if absent or not JSON)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0])
    except ValueError:
        return None


def done_in(db: sqlite3.Connection, job_ids: Iterable[str], *, batch: int = 900) -> dict[str, int]:
    """Counts by public status of the jobs ``job_ids`` (those the state holds)."""
    found: dict[str, int] = {}
    if current_version(db) == 0:
        return found  # a first setup that never finished (an older flux-batch, a full disk)
    for chunk in _chunks(job_ids, batch):
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT status, COUNT(*) FROM jobs WHERE id IN ({marks}) GROUP BY status", chunk)
        found = fold_counts(found, dict(rows))
    return found


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
