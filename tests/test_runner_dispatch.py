"""The dispatcher starts each job at most once per run, however its batches and slots interleave.

Found by the SIGKILL crash test (#9.6): the dispatcher used to read a batch of runnable jobs, then wait for
an in-flight slot for each. A job in that batch already running but not yet past the create limiter (still
``pending`` in the state) could finish while the dispatcher waited for a slot for an earlier job of the
batch; it was then no longer among the running tasks, so the stale row started it again, and it was created
twice. The dispatcher now takes the slot first and then reads the job (runner/queue.py). Its queue had the
same flaw in another place: a downstream job released by its upstream's success is started ahead of the
batches, so a later batch could read its row while it was still ``pending``; if it finished before the
queue reached that row, the row started it again (2 of 6 crash-test runs on the merged code: 4 duplicate
predictions in one; in the other, 2 edits whose images to edit finished downloading in the final run,
each created twice in it, 1.5 s apart). Every row the queue gives is now read again from the state
(tests/test_runner_queue.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from runner_harness import KONTEXT, SCHNELL, make_job, simulator

from flux_batch.runner.client import ApiClient
from flux_batch.runner.executor import Executor, RunSettings
from flux_batch.runner.ratelimit import Limiter
from flux_batch.runner.state.store import Store
from flux_batch.simulator import SimConfig


class GatedLimiter(Limiter):
    """An unlimited create limiter that holds chosen callers (by the order they ask) until told."""

    def __init__(self) -> None:
        super().__init__(None)
        self.asked = 0
        self.gates: dict[int, asyncio.Event] = {}
        self.on_ask: dict[int, asyncio.Event] = {}

    async def acquire(self, *args: Any, **kwargs: Any) -> None:
        self.asked += 1
        n = self.asked
        if n in self.on_ask:
            self.on_ask[n].set()
        if n in self.gates:
            await self.gates[n].wait()


async def test_a_job_that_finishes_while_the_dispatcher_waits_for_a_slot_is_not_started_again(
    tmp_path: Path,
) -> None:
    # Two slots. "base" and "solo" start first; "solo" waits for its create token, still pending in the
    # state. "base" finishes and releases its two edits: the dispatcher reads [edit-a, edit-b, solo],
    # starts edit-a, and waits for a slot for edit-b. Meanwhile solo gets its token and finishes. With the
    # batch read before that, solo must not be started again when the dispatcher reaches its row.
    base = make_job(SCHNELL, "base", "cat", 1, megapixels="0.25")
    edit_a = make_job(KONTEXT, "edit", "gold cat", 1, needs=(base.id,))
    edit_b = make_job(KONTEXT, "edit", "silver cat", 1, needs=(base.id,))
    solo = make_job(SCHNELL, "solo", "owl", 2, megapixels="0.25")
    sim = simulator(SimConfig(latency=0.0))
    limiter = GatedLimiter()
    solo_goes, edit_a_asks = asyncio.Event(), asyncio.Event()
    limiter.gates = {2: solo_goes, 3: asyncio.Event()}  # 1 base, 2 solo, 3 edit-a (held to the end)
    limiter.on_ask = {3: edit_a_asks}

    store = Store.open(tmp_path, clock=sim.clock)
    store.begin_ingest()
    store.add_jobs([(base, 0.003), (edit_a, 0.04), (edit_b, 0.04), (solo, 0.003)])
    store.prepare_run()
    executor = Executor(
        store,
        ApiClient(sim.http, sim.base_url, "r8_test", wall_clock=sim.clock),
        RunSettings(out_dir=tmp_path, max_in_flight=2),
        create_limiter=limiter,
        other_limiter=Limiter(None),
        clock=sim.clock,
        wall_clock=sim.clock,
        sleep=sim.clock.sleep,
        rng=random.Random(3),
    )
    running = asyncio.create_task(executor.run())
    await asyncio.wait_for(edit_a_asks.wait(), 10)  # the dispatcher now waits for a slot for edit-b
    solo_goes.set()
    for _ in range(1000):  # solo is created, downloaded and finished; edit-b takes its slot and finishes
        await asyncio.sleep(0.01)  # (downloads seal their files in a worker thread)
        if store.job(edit_b.id).status == "succeeded":
            break
    limiter.gates[3].set()
    await asyncio.wait_for(running, 10)
    try:
        assert [store.job(j.id).status for j in (base, edit_a, edit_b, solo)] == ["succeeded"] * 4
        assert [len(store.attempts(j.id)) for j in (base, edit_a, edit_b, solo)] == [1, 1, 1, 1]
        stats = sim.stats()
        assert stats["predictions_created"] == 4 and stats["duplicate_predictions"] == 0
    finally:
        store.close()
