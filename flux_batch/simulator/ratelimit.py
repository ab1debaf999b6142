"""The simulator's side of rate limits (:mod:`flux_batch.ratelimit`): per-token buckets, and the 429s and
rate-limit headers they answer with.

Two buckets per token, as on Replicate: one for creating predictions, one for every other endpoint. The
low-credit mode replaces the create bucket by 6 a minute with a burst of 1 and answers with the longer
message seen in the wild. Every metered answer carries ``ratelimit-remaining`` (whole requests left in the
bucket) and ``ratelimit-reset`` (whole seconds until it is full again), as Replicate's recorded responses
do; what exactly Replicate counts in them is unconfirmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flux_batch.ratelimit import TokenBucket, per_minute
from flux_batch.simulator.config import SimConfig

LOW_CREDIT_RPM = 6
LOW_CREDIT_BURST = 1


@dataclass(frozen=True)
class Throttled:
    """A refusal: ``retry_after`` whole seconds (at least 1) and the problem ``detail`` text."""

    retry_after: int
    detail: str
    low_credit: bool = False

    def body(self, shape: str) -> dict[str, Any]:
        """The 429 body in one of :data:`~flux_batch.simulator.config.RATE_LIMIT_BODIES`' shapes."""
        if shape == "auto":
            shape = "retry_after" if self.low_credit else "bare"
        body: dict[str, Any] = {"detail": self.detail, "status": 429}
        if shape == "problem":
            body = {"title": "Request was throttled", **body}
        if shape in ("retry_after", "problem"):
            body["retry_after"] = self.retry_after
        return body


@dataclass(frozen=True)
class Metered:
    """What a bucket said about one request: the rate-limit headers' values, and the refusal if any."""

    remaining: int
    reset: int
    refused: Throttled | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
        ]


class Throttle:
    """Answers "may this token make this kind of request now?" from the config's limits."""

    def __init__(self, config: SimConfig) -> None:
        self.low_credit = config.low_credit
        if config.low_credit:
            self._create = (float(LOW_CREDIT_RPM), float(LOW_CREDIT_BURST))
        else:
            self._create = (float(config.create_rpm), float(config.burst))
        other_burst = config.other_burst
        if other_burst is None:
            # The same seconds of burst as the create bucket: 10 at 600/min -> 50 at 3000/min.
            ratio = config.other_rpm / config.create_rpm if config.create_rpm else 1.0
            other_burst = max(1, round(config.burst * ratio))
        self._other = (float(config.other_rpm), float(other_burst))
        self._buckets: dict[tuple[str, bool], TokenBucket] = {}

    def check(self, token: str, create: bool, now: float) -> Metered | None:
        """Take a token from the right bucket; None when that kind of request has no limit."""
        rpm, burst = self._create if create else self._other
        if rpm <= 0:
            return None
        bucket = self._buckets.get((token, create))
        if bucket is None:
            bucket = self._buckets[(token, create)] = TokenBucket(per_minute(rpm), burst)
        wait = bucket.take(now)
        reset = math.ceil((burst - bucket.tokens) / bucket.rate - 1e-9)
        if wait <= 0:
            return Metered(int(bucket.tokens + 1e-9), reset)
        seconds = max(1, math.ceil(wait))
        low_credit = create and self.low_credit
        if low_credit:
            detail = (
                "Request was throttled. Your rate limit for creating predictions is reduced to "
                f"{LOW_CREDIT_RPM} requests per minute with a burst of {LOW_CREDIT_BURST} requests while you "
                f"have less than $5.0 in credit. Your rate limit resets in ~{seconds}s."
            )
        else:
            detail = f"Request was throttled. Your rate limit resets in ~{seconds}s."
        return Metered(0, reset, Throttled(seconds, detail, low_credit))

    def reset(self) -> None:
        self._buckets.clear()

    def __repr__(self) -> str:
        return f"Throttle(create={self._create}, other={self._other}, tokens={len(self._buckets)})"
