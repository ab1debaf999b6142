"""Retry policies: exact delays with a seeded RNG, the 429 hint, and which errors are retried."""

from __future__ import annotations

import random

import pytest

from flux_batch.errors import (
    AuthError,
    DownloadError,
    InvalidInputError,
    OutputGoneError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from flux_batch.runner.retry import Backoff, delay_for, is_transient, retry_call


class ZeroRandom(random.Random):
    def random(self) -> float:
        return 0.0


def test_backoff_grows_exponentially_and_caps() -> None:
    policy = Backoff(initial=1.0, maximum=5.0, multiplier=2.0, jitter=0.5)
    assert [policy(n, ZeroRandom()) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_stays_in_range() -> None:
    policy = Backoff(initial=2.0, maximum=60.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy(3, rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


def test_delay_prefers_the_servers_hint() -> None:
    policy = Backoff(initial=1.0)
    assert delay_for(RateLimitedError("x", retry_after=7.5), 1, policy, ZeroRandom()) == 7.5
    assert delay_for(RateLimitedError("x", retry_after=None), 1, policy, ZeroRandom()) == 1.0


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (ServerError("x", status=503), True),
        (TransportError("x", sent=True), True),
        (RateLimitedError("x", retry_after=None), True),
        (DownloadError("truncated"), True),
        (OutputGoneError("gone"), False),
        (AuthError("x", status=401), False),
        (InvalidInputError("x", status=422), False),
    ],
)
def test_is_transient(err: Exception, transient: bool) -> None:
    assert is_transient(err) is transient


async def test_retry_call_sleeps_the_policy_delays_then_succeeds() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    outcomes: list[Exception | str] = [ServerError("a", status=502), TransportError("b", sent=False), "ok"]

    async def call() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    result = await retry_call(call, sleep=sleep, rng=ZeroRandom(), policy=Backoff(initial=0.5, multiplier=3))
    assert result == "ok"
    assert slept == [0.5, 1.5]


async def test_retry_call_gives_up_after_attempts_and_on_permanent_errors() -> None:
    calls = 0

    async def sleep(s: float) -> None:
        return None

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ServerError("down", status=500)

    with pytest.raises(ServerError):
        await retry_call(failing, sleep=sleep, rng=ZeroRandom(), attempts=3)
    assert calls == 3

    calls = 0

    async def rejected() -> None:
        nonlocal calls
        calls += 1
        raise InvalidInputError("bad", status=422)

    with pytest.raises(InvalidInputError):
        await retry_call(rejected, sleep=sleep, rng=ZeroRandom(), attempts=5)
    assert calls == 1
