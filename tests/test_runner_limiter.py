"""The async limiter on a fake clock: pacing, bursts, the pause and slow-down on 429, and recovery."""

from __future__ import annotations

import asyncio

from flux_batch.runner.limiter import Limiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


async def _times(limiter: Limiter, t: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await limiter.acquire()
        out.append(round(t.now, 6))
    return out


async def test_paces_at_the_rate_after_half_the_burst() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=4, clock=t.clock, sleep=t.sleep)  # 10/s, 2 kept as burst
    assert await _times(limiter, t, 5) == [0.0, 0.0, 0.1, 0.2, 0.3]


async def test_unlimited_never_waits() -> None:
    t = FakeTime()
    limiter = Limiter(None, clock=t.clock, sleep=t.sleep)
    assert await _times(limiter, t, 100) == [0.0] * 100
    assert limiter.rate == 0.0


async def test_concurrent_callers_get_distinct_slots() -> None:
    t = FakeTime()
    slots: list[float] = []

    async def sleep(seconds: float) -> None:
        # Every caller books at time 0; record when each would proceed.
        slots.append(seconds)

    limiter = Limiter(60, burst=2, clock=t.clock, sleep=sleep)  # 1/s
    await asyncio.gather(*(limiter.acquire() for _ in range(4)))
    assert sorted(slots) == [1.0, 2.0, 3.0]


async def test_throttle_pauses_halves_and_recovers_gradually() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=2, clock=t.clock, sleep=t.sleep, recovery_s=5.0)
    await limiter.acquire()
    limiter.throttled(3.0)
    assert limiter.rate == 5.0
    assert limiter.throttle_count == 1
    await limiter.acquire()
    assert t.now >= 3.0  # nobody goes before the server's reset time
    first = t.now
    await limiter.acquire()
    assert round(t.now - first, 6) == 0.2  # half the rate
    t.now = 3.0 + 5.0 * 2 + 0.01  # two recovery periods later
    await limiter.acquire()
    assert round(limiter.rate, 6) == round(5.0 * 1.25**2, 6)
    t.now += 60
    await limiter.acquire()
    assert limiter.rate == 10.0  # back to the target, never above


async def test_throttle_without_hint_pauses_one_second_and_has_a_floor() -> None:
    t = FakeTime()
    limiter = Limiter(60, burst=1, clock=t.clock, sleep=t.sleep, min_rate_fraction=0.25)
    limiter.throttled(None)
    t.now = 0.99
    limiter.throttled(None)  # still paused: the pause grows, the rate is not halved again
    assert limiter.rate == 0.5
    await limiter.acquire()
    assert t.now >= 1.99  # nobody goes before the extended pause ends
    for _ in range(8):
        t.now += 1.0  # each 429 after the pause ended halves the rate again, down to the floor
        limiter.throttled(None)
    assert limiter.rate == 0.25
    assert "throttled=10" in repr(limiter)


async def test_a_burst_of_429s_halves_the_rate_once() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)  # 100/s
    for _ in range(12):  # twelve requests already on their way when the first 429 came back
        limiter.throttled(1.0)
        t.now += 0.001
    assert limiter.rate == 50.0
    assert limiter.throttle_count == 12


async def test_waiters_rebook_after_a_throttle() -> None:
    t = FakeTime()
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await gate.wait()
        t.now += seconds

    limiter = Limiter(60, burst=2, clock=t.clock, sleep=sleep)  # 1/s, 1 in reserve
    await limiter.acquire()  # uses the reserve
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.throttled(10.0)
    gate.set()
    await waiter
    assert t.now >= 10.0
