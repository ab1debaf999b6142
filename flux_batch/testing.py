"""Helpers for tests, flux-batch's own and its users': one fake clock, and the simulator in-process.

:class:`FakeClock` is the only clock the tests need. It is epoch seconds that move only when told to
(:meth:`~FakeClock.advance`) or when something sleeps on it: by default a sleep moves time at once and
yields to the event loop (so a whole run finishes without waiting); inside :meth:`~FakeClock.drive`, time
is virtual: sleepers wait until every task is idle, then time jumps to the earliest wake-up, so
concurrent sleeps overlap as they would in real time and a measured duration is exact.

:func:`in_process` gives an ``httpx.AsyncClient`` wired to the simulator's ASGI app (no socket), and
:func:`simulate` runs a manifest on it, on a fake clock, in a fraction of a second::

    from flux_batch.testing import simulate
    result = simulate(flux_batch.loads(my_manifest, base_dir=tmp_path))
    assert result.counts == {"succeeded": 12}
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from flux_batch import api
from flux_batch.manifest import Manifest
from flux_batch.simulator.app import SimulatorApp, create_app
from flux_batch.simulator.config import SimConfig

T = TypeVar("T")
START = 1_750_000_000.0  # 2025-06-15T15:06:40Z
TOKEN = "r8_test"


class FakeClock:
    """Epoch seconds that only move when told to (:meth:`advance`) or when something sleeps on them.

    Pass the clock itself where a clock is wanted (``clock=fake``, or ``fake.clock``) and
    :meth:`sleep` where a sleep is. ``slept`` lists every sleep asked for, in order.

    >>> clock = FakeClock(now=0.0)
    >>> asyncio.run(clock.sleep(2.5)); clock(), clock.slept
    (2.5, [2.5])
    """

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.slept: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0
        self._driving = False

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        """The time (for code that wants a method rather than a callable object)."""
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if not self._driving:
            if seconds > 0:
                # At least one step of the float: a wait shorter than the clock's resolution (a token
                # bucket a hair short of a token) would otherwise leave the time where it was, forever.
                self.now = max(self.now + seconds, math.nextafter(self.now, math.inf))
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._count += 1
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), self._count, wake))
        await wake

    async def drive(self, main: Awaitable[T]) -> T:
        """Run ``main`` in virtual time: sleepers wake in time order, each when every task is idle.

        Work handed to threads must run inline (the clock cannot see it; the runner's tests patch
        ``asyncio.to_thread``)."""
        loop = asyncio.get_running_loop()
        self._driving = True
        try:
            task = asyncio.ensure_future(main)
            while not task.done():
                await asyncio.sleep(0)
                if loop._ready:  # type: ignore[attr-defined]  # something can still run at this instant
                    continue
                while self._timers and self._timers[0][2].done():  # cancelled sleepers
                    heapq.heappop(self._timers)
                if not self._timers:
                    continue
                self.now = max(self.now, self._timers[0][0])
                while self._timers and self._timers[0][0] <= self.now:
                    _, _, wake = heapq.heappop(self._timers)
                    if not wake.done():
                        wake.set_result(None)
            return task.result()
        finally:
            self._driving = False

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now}, slept {len(self.slept)} times)"


@asynccontextmanager
async def in_process(
    config: SimConfig | None = None,
    clock: FakeClock | None = None,
    base_url: str = "http://simulator.local/v1",
    token: str | None = TOKEN,
) -> AsyncIterator[tuple[httpx.AsyncClient, SimulatorApp, FakeClock]]:
    """A simulator on a fake clock and a client: ``async with in_process() as (client, app, clock)``."""
    clock = clock or FakeClock()
    app = create_app(config, clock=clock, sleep=clock.sleep)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers) as client:
        yield client, app, clock


async def asimulate(
    manifest: Manifest,
    *,
    config: SimConfig | None = None,
    clock: FakeClock | None = None,
    seed: int = 0,
    **choices: Any,
) -> api.RunResult:
    """Run ``manifest`` on an in-process simulator and a fake clock (no socket, no real waiting).

    ``config`` shapes the simulator (latency, faults, limits: :class:`~flux_batch.simulator.SimConfig`);
    ``choices`` are :func:`flux_batch.run`'s (``out``, ``create_rpm``, ``retry_failed``...). The report
    is not written (``report=True`` writes it)."""
    clock = clock or FakeClock()
    report = bool(choices.pop("report", False))
    prepared = api.prepare_run(manifest, simulator=True, **choices)
    config = config or SimConfig(latency=1.0, seed=seed, models=prepared.simulated_models())
    app = create_app(config, clock=clock, sleep=clock.sleep)
    return await api.execute(
        prepared,
        http=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
        rng=random.Random(seed),
        report=report,
    )


def simulate(manifest: Manifest, **options: Any) -> api.RunResult:
    """:func:`asimulate` for code without a running event loop (a plain pytest test)."""
    return asyncio.run(asimulate(manifest, **options))
