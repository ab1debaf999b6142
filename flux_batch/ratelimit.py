"""Rate limits, one idea on both sides of the API: a token bucket, here as pure arithmetic.

The runner paces its requests with it (``runner/ratelimit.py``: the async limiter, adaptive on 429s) and
the simulator meters them with it (``simulator/ratelimit.py``: per-token buckets answering 429s), so the
two count alike. Pure: the caller passes the time (any monotonic clock, in seconds), so tests move time by
hand. A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens a second.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``take`` answers now: allowed (and taken), or how long until it would be. The simulator meters
    requests with it; the runner's limiter takes a token the moment a request goes."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {self.rate}/{self.burst}")
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def take(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens and return 0.0, or take nothing and return the seconds until ``n`` are there."""
        self._refill(now)
        # The tolerance absorbs float rounding: a caller that slept exactly the time it was told must find
        # its token, not be told to wait another nanosecond.
        if self.tokens >= n - 1e-9:
            self.tokens = max(0.0, self.tokens - n)
            return 0.0
        return (n - self.tokens) / self.rate

    def set_rate(self, now: float, rate: float) -> None:
        """Change the refill rate from ``now`` on (tokens earned so far are kept)."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0, not {rate}")
        self._refill(now)
        self.rate = rate

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens


def per_minute(n: float) -> float:
    """Requests per minute as tokens per second."""
    return n / 60.0
