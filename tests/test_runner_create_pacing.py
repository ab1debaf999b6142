"""The create stream at the limit, end to end on a virtual clock: a slow fsync of the intents must not send
the creates behind it together (#15: they took their tokens while it lasted, then left in a bunch that the
server's bucket refused)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from runner_harness import base_jobs, run, simulator

from flux_batch.runner import job_flow
from flux_batch.runner.state.group_sync import GroupSync
from flux_batch.simulator import SimConfig


@pytest.mark.slow
async def test_a_slow_intent_fsync_delays_the_creates_behind_it_without_bunching_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator(SimConfig(latency=1.0, create_rpm=6000, burst=10))  # 100/s; the runner keeps 5
    count = itertools.count()

    def slow_now_and_then(fsync: Callable[[], Awaitable[None]]) -> GroupSync:
        async def sync() -> None:
            if next(count) % 3 == 2:  # the disk is busy: 300 ms, 30 tokens' time
                await sim.clock.sleep(0.3)
            await fsync()

        return GroupSync(sync)

    monkeypatch.setattr(job_flow, "GroupSync", slow_now_and_then)
    jobs = base_jobs(200)
    result = await sim.clock.drive(run(sim, jobs, tmp_path, create_rpm=6000, thumbnails=False))
    assert result.counts == {"succeeded": 200}
    assert next(count) > 6  # the slow fsyncs happened
    assert sim.stats()["throttled"] == 0  # the server never saw more than its bucket allows
    assert sim.stats()["predictions_created"] == 200
