"""How many transactions a job costs: a create answered after its prediction ended (``Prefer: wait``)
records the prediction and its end in one, writing the job's row and its attempt's once each."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runner_harness import base_jobs, run, simulator

from flux_batch.runner.state import store as state_module
from flux_batch.simulator import SimConfig


@pytest.mark.slow  # a whole run in process
async def test_a_create_answered_with_its_end_records_both_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the answer (the prediction id) and the end (its status and output URLs) were two commits;
    a job had four transactions: intent, answer, end, file and success. Now three; and the answer's writes
    the job's row once (twice before, through 'submitted', and the attempt's twice)."""
    statements: list[str] = []
    real_connect = state_module.connect

    def connect(path: Path, **kw: Any) -> sqlite3.Connection:
        db = real_connect(path, **kw)
        if not kw.get("readonly"):
            db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(state_module, "connect", connect)
    sim = simulator(SimConfig(latency=0.5))
    result = await run(sim, base_jobs(8), tmp_path, thumbnails=False)
    assert result.counts == {"succeeded": 8}
    transactions: list[list[str]] = [[]]
    for sql in statements:
        transactions[-1].append(sql)
        if sql in ("COMMIT", "ROLLBACK"):
            transactions.append([])
    answers = [
        tx for tx in transactions if any(s.startswith("UPDATE attempts SET prediction_id") for s in tx)
    ]
    assert len(answers) == 8
    for tx in answers:  # the end, in the same transaction as the answer, each row written once
        assert any(s.startswith("UPDATE jobs SET prediction_id") and "'downloading'" in s for s in tx), tx
        assert sum(s.startswith("UPDATE jobs") for s in tx) == 1, tx
        assert sum(s.startswith("UPDATE attempts") for s in tx) == 1, tx
