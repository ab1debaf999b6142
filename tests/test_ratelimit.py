from __future__ import annotations

import pytest

from flux_batch.ratelimit import TokenBucket, per_minute


def test_take_allows_a_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    # a refused take costs nothing: half a second later exactly one token is there
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_take_after_sleeping_the_time_it_said_finds_the_token() -> None:
    bucket = TokenBucket(rate=3.0, burst=1)
    assert bucket.take(0.0) == 0.0
    wait = bucket.take(0.0)
    assert bucket.take(wait) == 0.0  # no further nanosecond from float rounding


def test_refill_never_exceeds_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=5)
    bucket.take(0.0, 5)
    assert bucket.available(1000.0) == 5


def test_time_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(9.0) > 0
    assert bucket.available(9.5) < 1


def test_set_rate_keeps_tokens_earned_so_far() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, tokens=0.0)
    bucket.updated = 0.0
    bucket.set_rate(2.0, rate=4.0)  # earned 2 tokens at the old rate
    assert bucket.available(2.0) == pytest.approx(2.0)
    assert bucket.available(2.5) == pytest.approx(4.0)


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


def test_per_minute() -> None:
    assert per_minute(600) == 10.0
