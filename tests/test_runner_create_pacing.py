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
from flux_batch.runner.ratelimit import Limiter
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


@pytest.mark.slow
async def test_only_a_few_seconds_of_creates_wait_for_their_token_with_an_intent_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each create's intent goes to disk before its token, so a kill leaves the intents of the creates
    waiting for one unsent (the next run settles each with a list call). Those are a room of two seconds
    of tokens (20 at 600/min), not every job in flight (180 here: 200 allowed, 20 predictions running)."""
    sim = simulator(SimConfig(latency=2.0, create_rpm=600))
    waiting, most = 0, 0
    real = Limiter.acquire

    async def counted(self: Limiter, *, first: bool = False) -> float:
        nonlocal waiting, most
        waiting += 1
        most = max(most, waiting)
        try:
            return await real(self, first=first)
        finally:
            waiting -= 1

    monkeypatch.setattr(Limiter, "acquire", counted)
    started = sim.clock()
    settings = {"create_rpm": 600, "other_rpm": None, "max_in_flight": 200, "thumbnails": False}
    result = await sim.clock.drive(run(sim, base_jobs(300), tmp_path, **settings))
    assert result.counts == {"succeeded": 300}
    assert sim.stats()["predictions_created"] == 300
    assert 10 <= most <= Limiter(600).waiting_room() == 20  # a full room, never more
    assert sim.clock() - started < 300 / 10 * 1.1 + 2.0  # at the limit all along
