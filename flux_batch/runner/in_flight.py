"""How many jobs may be in flight at once: a cap that follows the work (Little's law).

A run at the create limit keeps ``rate x W`` jobs in flight, where ``W`` is how long a job holds its slot
once its create has gone (the prediction, then its download). A fixed cap of 100 held a run with 20-s
predictions at 5 creates a second, half of Replicate's 10; a cap much larger than the need only queues
jobs at the limiter, holding memory and, with ``Prefer: wait``, nothing else. So the cap is

    cap = min(ceiling, max(floor, ceil(rate x W x margin) + burst))

with ``W`` the larger of the mean hold time of the jobs that finished (a moving average) and the age of
the oldest job now in flight (before the first job ends, that age is the only clue; and it keeps the cap
ahead of a model that has just become slower). ``rate`` is the create limiter's current rate (0 means
unlimited: the ceiling). The ceiling is the user's ``max_in_flight``; the margin covers the spread of
prediction times; ``burst`` covers the creates let out together.

The same arithmetic estimates a run before it starts (:func:`wall_time`, for ``plan``): jobs finish at
the smaller of the create rate and ``cap / W`` a second, and the last one a prediction after its create.

Hold times are measured from the create's send, not from the slot's taking: a job waiting for the
limiter holds a slot too, and counting that wait would feed the cap its own queue (a larger cap, longer
waits, a larger cap...).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from flux_batch import defaults

Sleep = Callable[[float], Awaitable[None]]

#: The ceiling when the user sets none (``max_in_flight``, defined in flux_batch.defaults): room for 25-s
#: predictions at 10 creates a second, within the 1,024 open files a process is commonly allowed (each
#: in-flight create holds a socket).
DEFAULT_CEILING = defaults.MAX_IN_FLIGHT
#: Spread of hold times covered above the mean (Little's law holds for the mean).
MARGIN = 1.5
#: Never fewer slots than this, whatever the arithmetic says.
FLOOR = 8
#: Weight of the latest hold time in the moving average (about the last 20 jobs).
SMOOTHING = 0.05
#: While the dispatcher waits at the cap, it looks again this often (the oldest job gets older).
RECHECK_S = 0.5


def in_flight_cap(
    *, rate: float, hold_s: float, ceiling: int, burst: int = 0, margin: float = MARGIN, floor: int = FLOOR
) -> int:
    """The cap for ``rate`` creates a second and jobs held ``hold_s`` seconds after their create (pure)."""
    ceiling = max(1, ceiling)
    if rate <= 0:
        return ceiling
    need = math.ceil(rate * max(0.0, hold_s) * margin) + max(0, burst)
    return min(ceiling, max(min(floor, ceiling), need))


def wall_time(
    shares: Sequence[tuple[int, float]], *, rate: float, ceiling: int, burst: int = 0
) -> tuple[float, float]:
    """How long ``shares`` take to run, and at what throughput (pure; for estimates).

    ``shares`` are ``(jobs, hold_s)`` pairs, one per model, their jobs mixed: the mean hold ``W`` over all
    jobs sets the cap (:func:`in_flight_cap`), jobs finish at ``min(rate, cap / W)`` a second (Little's
    law), and the last create waits its own model's hold. Returns ``(seconds, jobs per second)``; rate 0
    means unlimited."""
    jobs = sum(n for n, _ in shares)
    if jobs <= 0:
        return 0.0, 0.0
    mean_s = sum(n * max(0.0, hold) for n, hold in shares) / jobs
    drain_s = max(max(0.0, hold) for n, hold in shares if n > 0)
    cap = in_flight_cap(rate=rate, hold_s=mean_s, ceiling=ceiling, burst=burst)
    limits = [rate] if rate > 0 else []
    if mean_s > 0:
        limits.append(cap / mean_s)
    if not limits:
        return drain_s, math.inf
    throughput = min(limits)
    return jobs / throughput + drain_s, throughput


@dataclass
class HoldTimes:
    """The moving average of the jobs' hold times (seconds from create to the slot's release)."""

    mean_s: float = 0.0
    count: int = 0

    def observe(self, held_s: float) -> None:
        held_s = max(0.0, held_s)
        self.count += 1
        # Plain mean over the first jobs, then the moving average.
        weight = max(SMOOTHING, 1 / self.count)
        self.mean_s += weight * (held_s - self.mean_s)


class Slots:
    """An asyncio semaphore whose size is ``limit()``, read again on each acquire, on each release, and
    every ``recheck_s`` seconds while someone waits (a limit that grows with time frees waiters). Time
    passes through the injected ``sleep``, so tests on virtual time see the rechecks on their clock."""

    def __init__(
        self, limit: Callable[[], int], *, sleep: Sleep = asyncio.sleep, recheck_s: float = RECHECK_S
    ) -> None:
        self._limit = limit
        self._sleep = sleep
        self._recheck_s = recheck_s
        self.held = 0
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Slots held={self.held} limit={self._limit()}>"

    async def acquire(self) -> None:
        while self.held >= self._limit():
            self._changed.clear()
            released = asyncio.ensure_future(self._changed.wait())
            recheck = asyncio.ensure_future(self._sleep(self._recheck_s))
            try:
                await asyncio.wait((released, recheck), return_when=asyncio.FIRST_COMPLETED)
            finally:
                released.cancel()
                recheck.cancel()
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        self._changed.set()
