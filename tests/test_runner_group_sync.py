"""A create's intent is fsynced before the create is sent, by one fsync shared among the intents committed
meanwhile, off the event loop (:mod:`flux_batch.runner.state.group_sync`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from runner_harness import base_jobs, run, simulator

from flux_batch.runner.state.group_sync import GroupSync
from flux_batch.runner.state.store import STATE_FILE, Store


class HeldFsync:
    """An fsync that ends only when the test says so."""

    def __init__(self) -> None:
        self.started = 0
        self.gates: list[asyncio.Event] = []

    async def __call__(self) -> None:
        self.started += 1
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_that_commit_during_an_fsync_wait_for_the_next_one_and_share_it() -> None:
    fsync = HeldFsync()
    sync = GroupSync(fsync)
    first = asyncio.ensure_future(sync())
    await settle()
    assert fsync.started == 1
    later = [asyncio.ensure_future(sync()) for _ in range(49)]
    await settle()
    fsync.gates[0].set()  # the fsync that began before the 49 committed ends: it does not cover them
    await settle()
    assert first.done() and not any(task.done() for task in later)
    assert fsync.started == 2  # one more, for all 49
    fsync.gates[1].set()
    await settle()
    assert all(task.done() for task in later) and sync.fsyncs == 2


async def test_a_failed_fsync_reaches_its_callers_and_the_next_caller_tries_again() -> None:
    calls = [0]

    async def fsync() -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError("disk gone")

    sync = GroupSync(fsync)
    with pytest.raises(OSError):
        await sync()
    await sync()
    assert calls[0] == 2


async def test_a_cancelled_caller_does_not_stop_the_fsync_the_others_wait_for() -> None:
    fsync = HeldFsync()
    sync = GroupSync(fsync)
    a, b = asyncio.ensure_future(sync()), asyncio.ensure_future(sync())
    await settle()
    a.cancel()
    await settle()
    fsync.gates[0].set()
    await settle()
    assert b.done() and b.exception() is None and fsync.started == 1


@pytest.mark.slow  # a whole run, its fsyncs real
async def test_every_create_is_sent_after_an_fsync_of_its_intent_and_shares_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, each intent's commit fsynced itself (synchronous=FULL) on the event loop, one fsync per
    create; now the state's log is fsynced in a worker thread and creates go out only after it."""
    out = tmp_path / "out"
    durable: set[str] = set()  # jobs whose intent an fsync has covered
    fsyncs = [0]
    real_sync = Store.sync_wal

    def sync_wal(self: Store) -> None:
        fsyncs[0] += 1
        db = sqlite3.connect(self.path)  # what is committed now, as another connection sees it
        try:
            committed = {job for (job,) in db.execute("SELECT job_id FROM attempts")}
        finally:
            db.close()
        real_sync(self)
        durable.update(committed)

    monkeypatch.setattr(Store, "sync_wal", sync_wal)
    sim = simulator()
    jobs = base_jobs(24)
    by_seed = {job.input["seed"]: job.id for job, _ in jobs}
    sent_before_durable: list[str] = []
    inner = sim.http._transport

    class Watching(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/predictions"):
                job = by_seed[json.loads(request.content)["input"]["seed"]]
                if job not in durable:
                    sent_before_durable.append(job)
            return await inner.handle_async_request(request)

    sim.http = httpx.AsyncClient(transport=Watching())
    result = await run(sim, jobs, out, create_rpm=None, max_in_flight=20)
    assert result.counts == {"succeeded": 24}
    assert sent_before_durable == []
    assert 1 <= fsyncs[0] < 24  # intents released together share an fsync
    db = sqlite3.connect(out / STATE_FILE)
    try:
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 24
    finally:
        db.close()
