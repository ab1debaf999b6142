"""The runner's side of rate limits (:mod:`flux_batch.ratelimit`): async limiters over its token bucket,
with an adaptive slow-down on 429.

Callers queue in arrival order (those that ask to go ``first``, in a line of their own ahead of the others:
the runner's downstream jobs, so that a chain's stages overlap). Only the one at the head waits on the
clock: it takes a token
at the moment it goes, then gives the tokens the bucket holds at that moment to the callers next in line (so
the stream is not held to one caller per turn of the event loop) and makes the one after them the head.
Taking at the moment of going, rather than booking future slots for every caller at once, is what keeps a
stalled event loop (a busy CPU, a slow disk) from releasing every slot that passed during the stall together
when it ends: after a stall the bucket holds at most its burst, so at most that many go back to back, then
the rest at the rate. The server's bucket, which also refilled only up to its burst, never sees more than it
allows. Time comes from an injected clock and sleep (the event loop's by default), so tests move a fake
clock instead of waiting.

The create stream adapts to 429s (:meth:`Limiter.throttled`). One 429 after a quiet spell is most likely
jitter: requests paced right at the limit reach the server bunched by the network or its own load, and the
runner's bucket, half the server's, never sends more than the server's allows (tokens are taken the moment
a request goes). Such a 429 pauses every caller for one token's time (1/rate), not until the server's reset:
the server's bucket is empty, not the server slow, so a second at 6,000 a minute would lose a hundred
creates for nothing. Only a lone 429 gets that short pause, and only when the server's wait hint is short
(at most a second or one token's time, rounded up to whole seconds, as a bucket one token short answers):
after a quiet spell of ``strike_s`` seconds, at most ``short_pauses`` times a ``short_window_s``, at the
full rate, for a request whose send time the caller gave. Every other 429 pauses all callers until the
server's reset time: one whose hint is long (Replicate's "resets in ~30s"), one stating a limit, or one
that comes within ``strike_s`` seconds after a pause ends, short or long. The latter also cuts the rate
(by ``slow_down``, a quarter): the server's limit is really lower (another client on the same token, a
proxy with its own limit). The rate then recovers by a quarter every ``recovery_s`` seconds without a
429, back to the configured rate. A 429 that states the limit now in force (Replicate's low-credit answer:
"reduced to 6 requests per minute") sets the rate to it, for the rest of the run. 429s that answer
requests sent before the first of them came back (already on their way) extend its pause, and count as
no new strike.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from flux_batch.ratelimit import TokenBucket, per_minute

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
MIN_WAIT_S = 1e-6
#: Seconds of tokens that callers past the work before their token may wait for at once (see
#: :meth:`Limiter.waiting_room`): enough to cover a slow fsync, few enough that a kill leaves few intents
#: unsent.
WAITING_ROOM_S = 2.0


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
        strike_s: float = 5.0,
        slow_down: float = 0.75,
        short_pauses: int = 3,
        short_window_s: float = 60.0,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.target_rate = per_minute(rpm) if rpm else 0.0
        # Keep half the burst in reserve: requests paced exactly at the server's rate still arrive with
        # some jitter, and the server's unused burst is what absorbs it without a 429.
        self._bucket = TokenBucket(self.target_rate, max(1, burst // 2)) if self.target_rate else None
        self._min_rate = self.target_rate * min_rate_fraction
        self._recovery_s = recovery_s
        self._strike_s = strike_s
        self._slow_down = slow_down
        self._hold_until = 0.0
        self._strike_until = float("-inf")  # a 429 before this slows the rate
        self._last_change = 0.0
        self._short_pauses = short_pauses
        self._short_window_s = short_window_s
        self._shorts: deque[float] = deque()  # when the short pauses of the last window began
        self._episode_at = float("-inf")  # when the latest pause's first 429 came back
        self._episode_short = False
        self.short_pause_count = 0
        # Callers waiting behind the head, the ``first`` line ahead of the other; each future is set to True
        # (a token was taken for you: go) or False (you are the head now: wait for a token).
        self._first: deque[asyncio.Future[bool]] = deque()
        self._queue: deque[asyncio.Future[bool]] = deque()
        self._has_head = False
        self.throttle_count = 0

    @property
    def rate(self) -> float:
        """The current rate in requests per second (0.0 when unlimited)."""
        return self._bucket.rate if self._bucket else 0.0

    @property
    def burst(self) -> int:
        """Requests this limiter lets go back to back (0 when unlimited)."""
        return int(self._bucket.burst) if self._bucket else 0

    def waiting_room(self, seconds: float = WAITING_ROOM_S) -> int | None:
        """How many callers may wait for a token at once having done the work that goes before it (the
        runner: a create's intent, on disk): ``seconds`` of tokens at the configured rate, at least the
        burst. None when unlimited (a token never waits)."""
        if self._bucket is None:
            return None
        return max(self.burst, math.ceil(self.target_rate * seconds))

    def __repr__(self) -> str:
        if self._bucket is None:
            return "<Limiter unlimited>"
        return (
            f"<Limiter rate={self._bucket.rate * 60:.1f}/min target={self.target_rate * 60:.1f}/min "
            f"tokens={self._bucket.tokens:.2f} waiting={len(self._first) + len(self._queue)} "
            f"throttled={self.throttle_count} short={self.short_pause_count}>"
        )

    async def acquire(self, *, first: bool = False) -> float:
        """Wait for this caller's turn and a token; ``first``: ahead of every caller that did not ask to.
        Returns the clock's time when the token was taken: send right away, and tell :meth:`throttled`
        this time if the request is answered 429."""
        if self._bucket is None:
            return self._clock()
        if self._has_head:
            turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            (self._first if first else self._queue).append(turn)
            try:
                if await turn:
                    return self._clock()
            except asyncio.CancelledError:
                self._give_back(turn)
                raise
        else:
            self._has_head = True
        try:
            await self._take()
        finally:
            self._hand_over()
        return self._clock()

    def _hand_over(self) -> None:
        """The head leaves: tokens there are now go to the callers next in line, then the next waits."""
        bucket = self._bucket
        assert bucket is not None
        now = self._clock()
        while self._waiting() and now >= self._hold_until and bucket.available(now) >= 1 - 1e-9:
            turn = self._next()
            if not turn.done():  # a cancelled caller is skipped
                bucket.take(now)
                turn.set_result(True)
        while self._waiting():
            turn = self._next()
            if not turn.done():
                turn.set_result(False)
                return
        self._has_head = False

    def _waiting(self) -> bool:
        return bool(self._first or self._queue)

    def _next(self) -> asyncio.Future[bool]:
        return self._first.popleft() if self._first else self._queue.popleft()

    def _give_back(self, turn: asyncio.Future[bool]) -> None:
        """A waiting caller was cancelled: leave the line, passing on what it was given."""
        if not turn.done() or turn.cancelled():
            for line in (self._first, self._queue):
                if turn in line:
                    line.remove(turn)
        elif turn.result():
            bucket = self._bucket
            assert bucket is not None
            bucket.tokens = min(float(bucket.burst), bucket.tokens + 1)  # its token, unused
        else:
            self._hand_over()  # it had just been made the head

    async def _take(self) -> None:
        bucket = self._bucket
        assert bucket is not None
        while True:
            now = self._clock()
            if now < self._hold_until:
                await self._sleep(self._hold_until - now)
                continue
            self._recover(now)
            wait = bucket.take(now)
            if wait <= 0:
                return
            # Then look again: a 429 may have paused or slowed everyone meanwhile. At least a microsecond: a
            # wait below the clock's resolution (a fraction of a token short) would never end on a clock
            # that only moves when slept on.
            await self._sleep(max(wait, MIN_WAIT_S))

    def throttled(
        self, retry_after: float | None, limit_rpm: float | None = None, *, sent_at: float | None = None
    ) -> bool:
        """The server said 429 to a request whose token was taken at ``sent_at`` (this limiter's clock;
        None if not known): pause everyone, for one token's time or until the server's reset
        (``retry_after`` seconds, or 1), and slow down, or take ``limit_rpm`` if the server stated its
        limit, as the module says. True when that stated limit became the rate (it was below the
        configured one)."""
        bucket = self._bucket
        if bucket is None:
            return False
        now = self._clock()
        self.throttle_count += 1
        stated = per_minute(limit_rpm) if limit_rpm else None
        # Sent before this pause's first 429 came back: one of the requests already on their way.
        on_its_way = sent_at is not None and sent_at < self._episode_at
        if stated is None and on_its_way and self._episode_short:
            self._hold_until = max(self._hold_until, now + 1 / bucket.rate)
            bucket.tokens = 0.0
            return False
        if stated is None and not on_its_way and self._may_pause_short(now, sent_at, retry_after):
            self._shorts.append(now)
            self.short_pause_count += 1
            self._episode_at, self._episode_short = now, True
            self._hold_until = max(self._hold_until, now + 1 / bucket.rate)
            bucket.tokens = 0.0
            self._strike_until = self._hold_until + self._strike_s  # another 429 soon: really limited
            return False
        paused = now < self._hold_until or on_its_way
        if not on_its_way:
            self._episode_at, self._episode_short = now, False
        self._hold_until = max(self._hold_until, now + (retry_after if retry_after is not None else 1.0))
        adopted = False
        if stated is not None and stated < self.target_rate:
            adopted = True
            self.target_rate = stated
            self._min_rate = min(self._min_rate, stated)
            bucket.set_rate(now, stated)
        elif not paused and now < self._strike_until:
            bucket.set_rate(now, max(self._min_rate, bucket.rate * self._slow_down))
        bucket.tokens = 0.0
        self._last_change = self._hold_until
        self._strike_until = self._hold_until + self._strike_s
        return adopted

    def _may_pause_short(self, now: float, sent_at: float | None, retry_after: float | None) -> bool:
        """Whether a 429 is the lone one after a quiet spell that a token's pause answers (see above)."""
        bucket = self._bucket
        assert bucket is not None
        while self._shorts and self._shorts[0] <= now - self._short_window_s:
            self._shorts.popleft()
        # A bucket one token short answers "resets in ~1s" (whole seconds, at least one).
        short_hint = max(1.0, math.ceil(1 / bucket.rate - 1e-9))
        return (
            sent_at is not None
            and now >= self._strike_until
            and bucket.rate >= self.target_rate
            and (retry_after is None or retry_after <= short_hint)
            and len(self._shorts) < self._short_pauses
        )

    def _recover(self, now: float) -> None:
        bucket = self._bucket
        if bucket is None or bucket.rate >= self.target_rate:
            return
        steps = int((now - self._last_change) // self._recovery_s)
        if steps > 0:
            bucket.set_rate(now, min(self.target_rate, bucket.rate * 1.25**steps))
            self._last_change += steps * self._recovery_s
