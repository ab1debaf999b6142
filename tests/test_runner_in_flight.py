"""The in-flight cap follows the work (Little's law): the arithmetic, the moving average, the resizable
semaphore, and a run of slow predictions at the create limit, in virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from runner_harness import (
    VirtualClock,
    base_jobs,
    run_session,
    threads_inline,  # noqa: F401  (a fixture)
)

from flux_batch.runner.in_flight import FLOOR, HoldTimes, Slots, in_flight_cap, wall_time
from flux_batch.simulator import SimConfig, create_app


@pytest.mark.parametrize(
    ("rate", "hold_s", "ceiling", "burst", "cap"),
    [
        (10.0, 20.0, 500, 5, 305),  # 600/min, 20-s predictions: 200 needed, 1.5 x plus the burst
        (10.0, 1.0, 500, 5, 20),  # 1-s predictions: 15 + 5
        (100.0, 1.0, 500, 50, 200),  # 6,000/min
        (10.0, 60.0, 500, 5, 500),  # the user's ceiling
        (0.1, 1.0, 500, 1, FLOOR),  # never below the floor
        (0.1, 1.0, 3, 1, 3),  # nor above a ceiling under the floor
        (0.0, 20.0, 300, 0, 300),  # no create limit: the ceiling
        (10.0, -5.0, 500, 5, FLOOR),  # a clock that went back counts as nothing
    ],
)
def test_the_cap_is_rate_times_hold_time_with_a_margin(
    rate: float, hold_s: float, ceiling: int, burst: int, cap: int
) -> None:
    assert in_flight_cap(rate=rate, hold_s=hold_s, ceiling=ceiling, burst=burst) == cap


def test_hold_times_average_the_first_jobs_then_move() -> None:
    holds = HoldTimes()
    for held in (10.0, 20.0, 30.0):
        holds.observe(held)
    assert holds.mean_s == pytest.approx(20.0)
    for _ in range(200):
        holds.observe(2.0)  # the model got faster: the average follows
    assert holds.mean_s == pytest.approx(2.0, abs=0.01)


async def test_slots_wait_at_the_limit_and_go_when_it_grows_or_one_is_released() -> None:
    clock = VirtualClock()
    limit = {"n": 2}
    slots = Slots(lambda: limit["n"], sleep=clock.sleep, recheck_s=0.5)

    async def scenario() -> list[str]:
        order: list[str] = []
        await slots.acquire()
        await slots.acquire()

        async def third() -> None:
            await slots.acquire()
            order.append(f"third at {clock.now - start:.1f}")

        task = asyncio.ensure_future(third())
        await clock.sleep(1.2)
        assert not task.done() and slots.held == 2
        limit["n"] = 3  # the cap grew (the oldest job got older): seen at the next recheck
        await task
        fourth = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        assert not fourth.done()
        slots.release()  # a job ended: the waiter goes at once
        await fourth
        order.append(f"fourth at {clock.now - start:.1f}")
        return order

    start = clock.now
    assert await clock.drive(scenario()) == ["third at 1.5", "fourth at 1.5"]
    assert slots.held == 3


async def create_rate(tmp_path: Path, jobs: int, latency: float, **settings: object) -> float:
    """The steady create rate (creates a second over the middle 90 % of creates) of a run at 600
    creates a minute against predictions of ``latency`` seconds, in virtual time."""
    clock = VirtualClock()
    app = create_app(SimConfig(latency=latency, create_rpm=0), clock=clock, sleep=clock.sleep)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        run = run_session(
            http, "http://simulator.local/v1", base_jobs(jobs), tmp_path, clock, create_rpm=600,
            thumbnails=False, **settings,
        )  # fmt: skip
        result = await clock.drive(run)
    assert result.counts == {"succeeded": jobs}
    created = sorted(p.created for p in app.store.order)
    lo, hi = int(jobs * 0.05), int(jobs * 0.95)
    return (hi - lo) / (created[hi] - created[lo])


@pytest.mark.slow  # a run of hundreds of jobs in virtual time: 6-14 s of CPU
@pytest.mark.usefixtures("threads_inline")
async def test_slow_predictions_still_run_at_the_create_limit(tmp_path: Path) -> None:
    """20-s predictions at 600 creates a minute keep about 200 in flight; a fixed cap of 100 (the old
    default) held the run at half the limit (5.3 creates/s measured by this test on the previous code)."""
    rate = await create_rate(tmp_path, 500, latency=20.0)
    assert rate >= 0.97 * 10


@pytest.mark.slow  # a run of hundreds of jobs in virtual time: 6-14 s of CPU
@pytest.mark.usefixtures("threads_inline")
async def test_the_users_ceiling_still_holds(tmp_path: Path) -> None:
    rate = await create_rate(tmp_path, 300, latency=20.0, max_in_flight=50)
    assert rate <= 50 / 20 * 1.1  # Little's law with 50 in flight: 2.5 a second


def test_wall_time_is_the_rate_or_littles_law_whichever_binds() -> None:
    # 600 jobs of 2 s at 10 a second: the cap (ceil(10 x 2 x 1.5) + 10 = 40) keeps up; the rate binds
    assert wall_time([(600, 2.0)], rate=10, ceiling=500, burst=10) == (pytest.approx(62.0), 10)
    # 20-s jobs under a ceiling of 50: 50 / 20 = 2.5 a second, not 10
    seconds, throughput = wall_time([(600, 20.0)], rate=10, ceiling=50)
    assert throughput == pytest.approx(2.5) and seconds == pytest.approx(600 / 2.5 + 20)
    # no rate limit: the cap alone (the ceiling)
    assert wall_time([(100, 5.0)], rate=0, ceiling=10) == (pytest.approx(100 / 2 + 5), pytest.approx(2))
    assert wall_time([], rate=10, ceiling=10) == (0.0, 0.0)
    assert wall_time([(0, 5.0)], rate=10, ceiling=10) == (0.0, 0.0)
    # instant predictions: the rate alone
    assert wall_time([(50, 0.0)], rate=10, ceiling=10) == (pytest.approx(5.0), 10)


def test_wall_time_of_mixed_models_uses_the_mean_hold_and_waits_for_the_slowest() -> None:
    seconds, throughput = wall_time([(100, 1.0), (100, 23.0)], rate=10, ceiling=20)
    assert throughput == pytest.approx(20 / 12) and seconds == pytest.approx(200 / (20 / 12) + 23)
