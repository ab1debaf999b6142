"""Per-token limits on the shared TokenBucket: separate create and other buckets, low-credit mode, the
``ratelimit-*`` header values and the 429 body shapes seen in the wild."""

from __future__ import annotations

import pytest

from flux_batch.simulator import SimConfig
from flux_batch.simulator.ratelimit import Metered, Throttle, Throttled


def allowed(metered: Metered | None) -> bool:
    return metered is None or metered.refused is None


def refusal(metered: Metered | None) -> Throttled:
    assert metered is not None and metered.refused is not None
    return metered.refused


def test_create_bucket_refills_at_the_rate() -> None:
    throttle = Throttle(SimConfig(create_rpm=60, burst=2))
    assert allowed(throttle.check("a", True, 0.0)) and allowed(throttle.check("a", True, 0.0))
    refused = refusal(throttle.check("a", True, 0.0))
    assert refused.retry_after == 1
    assert refused.detail == "Request was throttled. Your rate limit resets in ~1s."
    assert allowed(throttle.check("a", True, 1.0))


def test_remaining_and_reset_count_the_bucket() -> None:
    throttle = Throttle(SimConfig(create_rpm=60, burst=3))
    assert throttle.check("a", True, 0.0) == Metered(2, 1)
    assert throttle.check("a", True, 0.0) == Metered(1, 2)
    assert throttle.check("a", True, 0.0) == Metered(0, 3)
    refused = throttle.check("a", True, 0.5)
    assert refused is not None and (refused.remaining, refused.reset) == (0, 3)
    assert refused.headers() == [(b"ratelimit-remaining", b"0"), (b"ratelimit-reset", b"3")]
    assert throttle.check("a", True, 10.0) == Metered(2, 1)


def test_tokens_and_kinds_have_their_own_buckets() -> None:
    throttle = Throttle(SimConfig(create_rpm=60, burst=1))
    assert allowed(throttle.check("a", True, 0.0))
    assert allowed(throttle.check("b", True, 0.0))
    assert allowed(throttle.check("a", False, 0.0))
    assert not allowed(throttle.check("a", True, 0.0))


def test_other_burst_scales_with_the_rates_unless_given() -> None:
    throttle = Throttle(SimConfig(create_rpm=600, other_rpm=3000, burst=10))
    assert sum(allowed(throttle.check("a", False, 0.0)) for _ in range(100)) == 50
    explicit = Throttle(SimConfig(other_rpm=3000, other_burst=5))
    assert sum(allowed(explicit.check("a", False, 0.0)) for _ in range(100)) == 5


def test_zero_means_unlimited_and_low_credit_is_6_per_minute_burst_1() -> None:
    unlimited = Throttle(SimConfig(create_rpm=0, other_rpm=0))
    assert all(unlimited.check("a", k, 0.0) is None for k in (True, False) for _ in range(1000))
    low = Throttle(SimConfig(low_credit=True))
    assert allowed(low.check("a", True, 0.0))
    refused = refusal(low.check("a", True, 0.0))
    assert refused.retry_after == 10 and refused.low_credit
    assert refused.detail == (
        "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per minute "
        "with a burst of 1 requests while you have less than $5.0 in credit. Your rate limit resets in ~10s."
    )
    assert allowed(low.check("a", True, 10.0))


NORMAL = Throttled(30, "Request was throttled. Your rate limit resets in ~30s.")
LOW = Throttled(5, "Request was throttled. ... Your rate limit resets in ~5s.", low_credit=True)


@pytest.mark.parametrize(
    ("refused", "shape", "body"),
    [
        (NORMAL, "auto", {"detail": NORMAL.detail, "status": 429}),
        (LOW, "auto", {"detail": LOW.detail, "status": 429, "retry_after": 5}),
        (LOW, "bare", {"detail": LOW.detail, "status": 429}),
        (NORMAL, "retry_after", {"detail": NORMAL.detail, "status": 429, "retry_after": 30}),
        (
            NORMAL,
            "problem",
            {"title": "Request was throttled", "detail": NORMAL.detail, "status": 429, "retry_after": 30},
        ),
    ],
)
def test_429_bodies_in_each_shape_seen(refused: Throttled, shape: str, body: dict[str, object]) -> None:
    assert refused.body(shape) == body
