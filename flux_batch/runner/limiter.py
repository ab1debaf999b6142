"""Async rate limiters over :class:`flux_batch.ratelimit.TokenBucket`, with an adaptive slow-down on 429.

Each call to :meth:`Limiter.acquire` books the next slot of the bucket and sleeps until it comes, so
concurrent callers are spaced evenly at the configured rate. Time comes from an injected clock and sleep
(the event loop's by default), so tests move a fake clock instead of waiting.

The create stream adapts: a 429 means the server sees us above its limit (another client on the same
token, a low-credit account, a proxy with a lower limit). :meth:`Limiter.throttled` pauses every caller
until the server's reset time, halves the rate and forgives the bookings made at the old rate; the rate
then recovers by a quarter every ``recovery_s`` seconds without another 429, back to the configured rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from flux_batch.ratelimit import TokenBucket, per_minute

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Limiter:
    """A paced gate for one kind of request. ``rpm`` None or 0 means unlimited."""

    def __init__(
        self,
        rpm: float | None,
        burst: int = 10,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        min_rate_fraction: float = 1 / 64,
        recovery_s: float = 5.0,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.target_rate = per_minute(rpm) if rpm else 0.0
        # Keep half the burst in reserve: requests paced exactly at the server's rate still arrive with
        # some jitter, and the server's unused burst is what absorbs it without a 429.
        self._bucket = TokenBucket(self.target_rate, max(1, burst // 2)) if self.target_rate else None
        self._min_rate = self.target_rate * min_rate_fraction
        self._recovery_s = recovery_s
        self._hold_until = 0.0
        self._generation = 0
        self._last_change = 0.0
        self.throttle_count = 0

    @property
    def rate(self) -> float:
        """The current rate in requests per second (0.0 when unlimited)."""
        return self._bucket.rate if self._bucket else 0.0

    def __repr__(self) -> str:
        if self._bucket is None:
            return "<Limiter unlimited>"
        return (
            f"<Limiter rate={self._bucket.rate * 60:.1f}/min target={self.target_rate * 60:.1f}/min "
            f"tokens={self._bucket.tokens:.2f} throttled={self.throttle_count}>"
        )

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        bucket = self._bucket
        if bucket is None:
            return
        while True:
            now = self._clock()
            if now < self._hold_until:
                await self._sleep(self._hold_until - now)
                continue
            self._recover(now)
            generation = self._generation
            wait = bucket.reserve(now)
            if wait > 0:
                await self._sleep(wait)
            if generation == self._generation:
                return
            # A 429 arrived while we waited: our booking was forgiven; book again at the new rate.

    def throttled(self, retry_after: float | None) -> None:
        """The server said 429: pause everyone for ``retry_after`` seconds (or 1) and halve the rate.

        A 429 that arrives during the pause answers a request sent before it (nothing is sent while
        paused): it extends the pause but does not halve the rate again, so one overshoot answered by a
        burst of 429s slows the stream once, not once per request that was already on its way."""
        bucket = self._bucket
        if bucket is None:
            return
        now = self._clock()
        self.throttle_count += 1
        paused = now < self._hold_until
        self._hold_until = max(self._hold_until, now + (retry_after if retry_after is not None else 1.0))
        if not paused:
            bucket.set_rate(now, max(self._min_rate, bucket.rate / 2))
        bucket.tokens = 0.0
        self._generation += 1
        self._last_change = self._hold_until

    def _recover(self, now: float) -> None:
        bucket = self._bucket
        if bucket is None or bucket.rate >= self.target_rate:
            return
        steps = int((now - self._last_change) // self._recovery_s)
        if steps > 0:
            bucket.set_rate(now, min(self.target_rate, bucket.rate * 1.25**steps))
            self._last_change += steps * self._recovery_s
