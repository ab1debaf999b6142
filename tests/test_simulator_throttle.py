"""Per-token limits on the shared TokenBucket: separate create and other buckets, low-credit mode."""

from __future__ import annotations

from flux_batch.simulator import SimConfig
from flux_batch.simulator.throttle import Throttle


def test_create_bucket_refills_at_the_rate() -> None:
    throttle = Throttle(SimConfig(create_rpm=60, burst=2))
    assert throttle.check("a", True, 0.0) is None and throttle.check("a", True, 0.0) is None
    refused = throttle.check("a", True, 0.0)
    assert refused is not None and refused.retry_after == 1
    assert refused.detail == "Request was throttled. Your rate limit resets in ~1s."
    assert throttle.check("a", True, 1.0) is None


def test_tokens_and_kinds_have_their_own_buckets() -> None:
    throttle = Throttle(SimConfig(create_rpm=60, burst=1))
    assert throttle.check("a", True, 0.0) is None
    assert throttle.check("b", True, 0.0) is None
    assert throttle.check("a", False, 0.0) is None
    assert throttle.check("a", True, 0.0) is not None


def test_other_burst_scales_with_the_rates_unless_given() -> None:
    throttle = Throttle(SimConfig(create_rpm=600, other_rpm=3000, burst=10))
    assert sum(throttle.check("a", False, 0.0) is None for _ in range(100)) == 50
    explicit = Throttle(SimConfig(other_rpm=3000, other_burst=5))
    assert sum(explicit.check("a", False, 0.0) is None for _ in range(100)) == 5


def test_zero_means_unlimited_and_low_credit_is_6_per_minute_burst_1() -> None:
    unlimited = Throttle(SimConfig(create_rpm=0, other_rpm=0))
    assert all(unlimited.check("a", k, 0.0) is None for k in (True, False) for _ in range(1000))
    low = Throttle(SimConfig(low_credit=True))
    assert low.check("a", True, 0.0) is None
    refused = low.check("a", True, 0.0)
    assert refused is not None and refused.retry_after == 10
    assert refused.detail == (
        "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per minute "
        "with a burst of 1 requests while you have less than $5.0 in credit. Your rate limit resets in ~10s."
    )
    assert low.check("a", True, 10.0) is None
