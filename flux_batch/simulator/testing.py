"""Helpers for driving the simulator in-process from tests: a fake clock whose sleep moves time, and an
authenticated ``httpx.AsyncClient`` wired to the app through ``httpx.ASGITransport`` (no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from flux_batch.simulator.app import SimulatorApp, create_app
from flux_batch.simulator.config import SimConfig

START = 1_750_000_000.0  # 2025-06-15T15:06:40Z
TOKEN = "r8_test"


class FakeClock:
    """Epoch seconds that only move when told to (``advance``) or when something sleeps on them."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

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
