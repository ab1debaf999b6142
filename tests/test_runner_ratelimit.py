"""The async limiter on a fake clock: pacing, bursts, the pause and slow-down on 429, and recovery."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

from flux_batch.ratelimit import TokenBucket
from flux_batch.runner.ratelimit import Limiter
from flux_batch.testing import FakeClock


def FakeTime() -> FakeClock:  # a clock starting at 0, as the figures below read
    return FakeClock(now=0.0)


class VirtualTime:
    """Sleeping tasks wait in a heap; :meth:`drive` wakes them in time order, moving the clock to each
    wake-up, or jumps the clock past a stall first. Bounded, so a bug fails the test instead of hanging."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    async def drive(
        self, tasks: list[asyncio.Task[float]], *, stall: tuple[float, float] | None = None
    ) -> None:
        """Run ``tasks`` to completion. ``stall=(at, until)``: nothing wakes between ``at`` and ``until``
        (the event loop was busy), then everything due wakes at ``until``, in order."""
        for _ in range(100_000):
            for _ in range(20):
                await asyncio.sleep(0)  # let every woken task run until it sleeps again or ends
            if all(task.done() for task in tasks):
                return
            assert self._heap, "tasks are blocked on something other than the clock"
            when, _, future = heapq.heappop(self._heap)
            if stall is not None and stall[0] <= when < stall[1]:
                when = stall[1]
            self.now = max(self.now, when)
            if not future.done():  # a sleeper that was cancelled is gone
                future.set_result(None)
        raise AssertionError("the limiter did not finish")


async def _proceed_times(limiter: Limiter, t: VirtualTime, n: int, **drive: object) -> list[float]:
    async def one() -> float:
        await limiter.acquire()
        return t.now

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await t.drive(tasks, **drive)  # type: ignore[arg-type]
    return sorted(round(task.result(), 6) for task in tasks)


def _server_refusals(times: list[float], rate: float, burst: int) -> int:
    """How many of these sends a server's token bucket of ``burst`` at ``rate``/s would answer 429."""
    server = TokenBucket(rate, burst)
    return sum(1 for at in times if server.take(at) > 0)


async def test_concurrent_callers_are_spaced_at_the_rate() -> None:
    t = VirtualTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)  # 100/s, 5 kept as burst
    times = await _proceed_times(limiter, t, 40)
    assert times[:5] == [0.0] * 5
    assert times[5:] == [round(0.01 * i, 6) for i in range(1, 36)]
    assert _server_refusals(times, 100.0, 10) == 0


async def test_a_stalled_event_loop_does_not_release_its_backlog_at_once() -> None:
    # 40 callers booked at 100/s; the loop is busy from 50 ms to 300 ms, so 25 slots pass unserved.
    # Booked slots alone would release those 25 together at 0.3 s: 15 too many for a server's burst of
    # 10. The limiter lets half the burst go at once and spaces the rest at the rate.
    t = VirtualTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)
    times = await _proceed_times(limiter, t, 40, stall=(0.05, 0.3))
    assert times.count(0.3) == 5
    backlog = times[times.index(0.3) + 4 :]
    assert all(round(b - a, 6) == 0.01 for a, b in itertools.pairwise(backlog))
    assert _server_refusals(times, 100.0, 10) == 0
    assert len(times) == 40


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


async def test_a_lone_429_pauses_without_slowing_down() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=2, clock=t.clock, sleep=t.sleep, strike_s=10.0)  # 10/s
    await limiter.acquire()
    limiter.throttled(3.0)
    assert limiter.rate == 10.0  # most likely jitter: the rate stays
    await limiter.acquire()
    assert t.now >= 3.0  # nobody goes before the server's reset time
    t.now = 3.0 + 10.0 + 0.01  # a quiet spell: the next 429 is a lone one again
    limiter.throttled(1.0)
    assert limiter.rate == 10.0
    assert limiter.throttle_count == 2


async def test_repeated_429s_cut_the_rate_by_a_quarter_and_it_recovers_gradually() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=2, clock=t.clock, sleep=t.sleep, recovery_s=5.0, strike_s=5.0)
    limiter.throttled(3.0)
    t.now = 5.0  # the pause ended at 3 s; another 429 within the strike window: the limit is lower
    limiter.throttled(1.0)
    assert limiter.rate == 7.5
    await limiter.acquire()
    assert t.now >= 6.0
    first = t.now
    await limiter.acquire()
    assert round(t.now - first, 6) == round(1 / 7.5, 6)  # three quarters of the rate
    t.now = 6.0 + 5.0 + 0.01  # one recovery period later
    await limiter.acquire()
    assert round(limiter.rate, 6) == round(7.5 * 1.25, 6)
    t.now += 60
    await limiter.acquire()
    assert limiter.rate == 10.0  # back to the target, never above


async def test_429s_during_a_pause_extend_it_and_strikes_slow_down_to_a_floor() -> None:
    t = FakeTime()
    limiter = Limiter(60, burst=1, clock=t.clock, sleep=t.sleep, min_rate_fraction=0.25)
    limiter.throttled(None)
    t.now = 0.99
    limiter.throttled(None)  # still paused: the pause grows, and it is no new strike
    assert limiter.rate == 1.0
    await limiter.acquire()
    assert t.now >= 1.99  # nobody goes before the extended pause ends
    for _ in range(8):
        t.now += 1.0  # each 429 soon after a pause ended cuts the rate, down to the floor
        limiter.throttled(None)
    assert limiter.rate == 0.25
    assert "throttled=10" in repr(limiter)


async def test_a_burst_of_429s_slows_the_rate_at_most_once() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)  # 100/s
    limiter.throttled(1.0)
    t.now = 2.0  # a strike: the next overshoot slows down
    for _ in range(12):  # twelve requests already on their way when the first 429 came back
        limiter.throttled(1.0)
        t.now += 0.001
    assert limiter.rate == 75.0
    assert limiter.throttle_count == 13


async def test_a_stated_lower_limit_becomes_the_rate_for_the_rest_of_the_run() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=10, clock=t.clock, sleep=t.sleep)
    assert limiter.throttled(5.0, limit_rpm=6)  # "reduced to 6 requests per minute with a burst of 1"
    assert limiter.rate == 0.1
    assert limiter.target_rate == 0.1
    await limiter.acquire()
    assert t.now >= 5.0
    t.now += 3600
    await limiter.acquire()
    assert limiter.rate == 0.1  # no recovery above what the server said
    assert not limiter.throttled(5.0, limit_rpm=6000)  # a higher "limit" never speeds up
    assert limiter.rate == 0.1


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


async def test_cancelled_waiters_leave_the_queue_and_hand_over_their_turn() -> None:
    t = VirtualTime()
    limiter = Limiter(600, burst=2, clock=t.clock, sleep=t.sleep)  # 10/s, 1 kept as burst
    order: list[int] = []

    async def one(i: int) -> float:
        await limiter.acquire()
        order.append(i)
        return t.now

    tasks = [asyncio.create_task(one(i)) for i in range(6)]
    for _ in range(5):
        await asyncio.sleep(0)  # 0 went at once, 1 is at the head waiting on the clock, 2-5 queue
    tasks[1].cancel()  # the head, while it waits for a token
    tasks[3].cancel()  # one in the middle of the queue
    live = [task for i, task in enumerate(tasks) if i not in (1, 3)]
    await t.drive(live)
    assert order == [0, 2, 4, 5]  # first come, first served; nobody left waiting
    assert [round(task.result(), 6) for task in live] == [0.0, 0.1, 0.2, 0.3]
    assert not limiter._queue


async def test_tokens_at_hand_go_to_the_callers_in_line_in_one_turn() -> None:
    # Not one caller per turn of the event loop: a busy loop turns slower than 100 times a second.
    t = VirtualTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)  # 100/s, 5 tokens at hand
    tasks = [asyncio.create_task(limiter.acquire()) for _ in range(12)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert sum(task.done() for task in tasks) == 5  # the bucket's five; the sixth waits on the clock
    (*_, head) = t._heap.pop()
    t.now = 0.3  # it wakes late, after a stall: the bucket is full again
    head.set_result(None)
    await asyncio.sleep(0)  # the head takes its token and hands the four at hand to the next in line
    await asyncio.sleep(0)  # they go
    assert sum(task.done() for task in tasks) == 10
    await t.drive(tasks)  # type: ignore[arg-type]
    assert t.now == 0.32


# -- the short pause after a lone 429 (#15: a second per 429 was most of the gap to the limit) -----------


async def _steady(limiter: Limiter, t: FakeTime, n: int = 10) -> float:
    """Spend the burst and pace ``n`` sends; the last one's token time."""
    sent = 0.0
    for _ in range(n):
        sent = await limiter.acquire()
    return sent


async def test_a_lone_429_to_a_paced_send_pauses_one_token_not_until_the_reset() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)  # 100/s
    sent = await _steady(limiter, t)
    t.now += 0.03  # its answer: "resets in ~1s", a bucket one token short, rounded up
    limiter.throttled(1.0, sent_at=sent)
    told = t.now
    assert round(await limiter.acquire() - told, 6) == 0.01  # one token's time, not a second
    assert limiter.rate == 100.0 and limiter.short_pause_count == 1


async def test_429s_already_on_their_way_keep_the_short_pause_and_are_no_strike() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)
    sends = [await limiter.acquire() for _ in range(20)]
    t.now += 0.03
    limiter.throttled(1.0, sent_at=sends[10])
    for sent in sends[11:]:  # the rest of the bunch the server refused, answered one by one
        t.now += 0.002
        limiter.throttled(1.0, sent_at=sent)
    told = t.now
    assert round(await limiter.acquire() - told, 6) == 0.01
    assert limiter.rate == 100.0 and limiter.short_pause_count == 1 and limiter.throttle_count == 10


async def test_a_second_429_soon_after_a_short_pause_waits_for_the_reset_and_slows_down() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep, strike_s=5.0)
    sent = await _steady(limiter, t)
    limiter.throttled(1.0, sent_at=sent)  # short
    sent = await _steady(limiter, t, 3)  # sent after the short pause: a new refusal, not the same bunch
    t.now += 0.5
    limiter.throttled(1.0, sent_at=sent)
    told = t.now
    assert await limiter.acquire() >= told + 1.0  # the server's reset, as before this change
    assert limiter.rate == 75.0  # and the strike's slow-down
    assert limiter.short_pause_count == 1


async def test_short_pauses_are_few_in_a_window() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep, strike_s=5.0, short_pauses=3)
    for _ in range(3):
        limiter.throttled(1.0, sent_at=await _steady(limiter, t))
        t.now += 6.0  # a quiet spell each time
    limiter.throttled(1.0, sent_at=await _steady(limiter, t))  # a fourth within the minute
    told = t.now
    assert await limiter.acquire() >= told + 1.0
    assert limiter.short_pause_count == 3
    t.now += 60.0  # the window has passed: short again
    limiter.throttled(1.0, sent_at=await _steady(limiter, t))
    assert limiter.short_pause_count == 4


async def test_a_long_wait_hint_or_a_stated_limit_is_waited_for_in_full() -> None:
    t = FakeTime()
    limiter = Limiter(600, burst=10, clock=t.clock, sleep=t.sleep)  # 10/s
    limiter.throttled(30.0, sent_at=await _steady(limiter, t))  # Replicate's "resets in ~30s"
    told = t.now
    assert await limiter.acquire() >= told + 30.0
    t.now += 60.0
    low_credit = Limiter(600, burst=10, clock=t.clock, sleep=t.sleep)
    low_credit.throttled(1.0, limit_rpm=6, sent_at=await _steady(low_credit, t))
    told = t.now
    assert await low_credit.acquire() >= told + 1.0
    assert low_credit.rate == 0.1 and low_credit.short_pause_count == limiter.short_pause_count == 0
    t.now += 60.0
    low_credit.throttled(1.0, limit_rpm=6, sent_at=await _steady(low_credit, t, 1))  # stated again
    told = t.now
    assert await low_credit.acquire() >= told + 1.0 and low_credit.short_pause_count == 0


async def test_an_unknown_send_time_gets_the_reset_pause() -> None:
    t = FakeTime()
    limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep)
    await _steady(limiter, t)
    limiter.throttled(1.0)  # polls and lists: the caller does not say when it sent
    told = t.now
    assert await limiter.acquire() >= told + 1.0


async def _against_a_server(
    limiter: Limiter, t: VirtualTime, server: TokenBucket, n: int
) -> tuple[int, float]:
    """``n`` creates by 50 workers through ``limiter`` to ``server``, each answered 20 ms after its token
    (429 with the whole seconds until the server's next token, and sent again): the 429s, and the lowest
    rate the limiter went at."""
    refused = 0
    left = n
    lowest = limiter.rate

    async def worker() -> float:
        nonlocal refused, left, lowest
        while left > 0:
            sent = await limiter.acquire()
            await t.sleep(0.02)
            wait = server.take(t.now)
            if wait > 0:
                refused += 1
                limiter.throttled(float(max(1, math.ceil(wait))), sent_at=sent)
                lowest = min(lowest, limiter.rate)
                continue
            left -= 1
            await t.sleep(0.1)  # the prediction
        return t.now

    tasks = [asyncio.create_task(worker()) for _ in range(50)]
    await t.drive(tasks)
    return refused, lowest


async def test_a_server_limited_below_the_rate_still_slows_the_runner_with_few_429s() -> None:
    # The account's real limit is half what the runner was told (another client on the same token): the
    # short pause must not turn into hammering. Compared with short pauses off (the code before them).
    results = {}
    for short in (3, 0):
        t = VirtualTime()
        limiter = Limiter(6000, burst=10, clock=t.clock, sleep=t.sleep, short_pauses=short)
        refused, lowest = await _against_a_server(limiter, t, TokenBucket(50.0, 10), 2000)
        results[short] = (refused, t.now, lowest, limiter.short_pause_count)
    (refused, took, lowest, shorts), (refused_before, took_before, _, _) = results[3], results[0]
    assert lowest <= 50.0  # slowed down to the server's rate or below
    assert shorts == 1  # the first 429 only; the next came soon after
    assert refused <= 0.01 * 2000 and refused <= refused_before + 2  # measured: 13 and 13
    assert took <= took_before * 1.05
