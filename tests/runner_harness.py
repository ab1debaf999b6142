"""Shared helpers for the runner's tests: jobs built directly, and the simulator in-process on a fake
clock that yields to the event loop on every sleep (so time never really passes)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from flux_batch.jobs import Job, upstream_ref
from flux_batch.jobs.ids import job_id, slugify
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.session import ApiTarget, SessionResult, run_jobs
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.app import SimulatorApp
from flux_batch.testing import FakeClock

T = TypeVar("T")
SCHNELL = "black-forest-labs/flux-schnell"
KONTEXT = "black-forest-labs/flux-kontext-pro"
PRO = "black-forest-labs/flux-pro"


#: One fake clock for every test (flux_batch.testing.FakeClock): inside ``clock.drive(...)`` time is
#: virtual (concurrent sleeps overlap, so timings are exact); elsewhere a sleep moves time and yields.
VirtualClock = YieldingClock = FakeClock


def make_job(model: str, stage: str, prompt: str, seed: int, needs: Sequence[str] = (), **inputs: Any) -> Job:
    inp: dict[str, Any] = {"prompt": prompt, "seed": seed, **inputs}
    if needs:
        inp["input_image"] = upstream_ref(needs[0])
    return Job(
        id=job_id(model, None, inp, needs),
        stage=stage,
        model=model,
        version=None,
        input=inp,
        vars={"n": seed},
        needs=tuple(needs),
        slug=slugify(prompt),
    )


def base_jobs(n: int, stage: str = "base") -> list[tuple[Job, float | None]]:
    return [(make_job(SCHNELL, stage, f"cat {i}", i, megapixels="0.25"), 0.003) for i in range(n)]


def chain_jobs(n: int) -> list[tuple[Job, float | None]]:
    out = []
    for job, cost in base_jobs(n):
        out.append((job, cost))
        out.append((make_job(KONTEXT, "edit", f"gold cat {job.seed}", job.seed or 0, needs=(job.id,)), 0.04))
    return out


@dataclass
class Sim:
    app: SimulatorApp
    http: httpx.AsyncClient
    clock: YieldingClock
    base_url: str

    def stats(self) -> dict[str, Any]:
        return self.app.stats()


def simulator(config: SimConfig | None = None, *, proxy: bool = False) -> Sim:
    clock = YieldingClock()
    app = create_app(config or SimConfig(latency=1.0), clock=clock, sleep=clock.sleep)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    base = "http://simulator.local" + ("/replicate/v1" if proxy else "/v1")
    return Sim(app, http, clock, base)


async def run(
    sim: Sim,
    jobs: Sequence[tuple[Job, float | None]],
    out: Path,
    *,
    create_rpm: float | None = 600,
    other_rpm: float | None = 3000,
    **settings: Any,
) -> SessionResult:
    return await run_session(
        sim.http, sim.base_url, jobs, out, sim.clock, create_rpm=create_rpm, other_rpm=other_rpm, **settings
    )


async def run_session(
    http: httpx.AsyncClient,
    base_url: str,
    jobs: Sequence[tuple[Job, float | None]],
    out: Path,
    clock: YieldingClock | VirtualClock,
    *,
    create_rpm: float | None = 600,
    other_rpm: float | None = 3000,
    **settings: Any,
) -> SessionResult:
    """``run_jobs`` on ``clock`` with a fixed RNG and no report; ``settings`` are RunSettings fields and
    ``run_jobs``' own keywords (``retry_failed``, ``on_event``, ``thumbnails``, ...)."""
    own = ("retry_failed", "reseed", "on_executor", "on_event", "on_end", "thumbnails")
    kw = {k: settings.pop(k) for k in own if k in settings}
    real, asyncio.to_thread = asyncio.to_thread, _inline  # type: ignore[assignment]
    try:  # the clock cannot see a thread's work: time would run on meanwhile (see threads_inline)
        return await run_jobs(
            list(jobs),
            RunSettings(out_dir=out, **settings),
            ApiTarget(base_url, "r8_test", create_rpm=create_rpm, other_rpm=other_rpm),
            http,
            clock=clock,
            wall_clock=clock,
            sleep=clock.sleep,
            rng=random.Random(3),
            report=False,
            **kw,
        )
    finally:
        asyncio.to_thread = real


async def _inline(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return func(*args, **kwargs)


@pytest.fixture
def threads_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work the runner hands to threads (the intents' and downloads' fsyncs, thumbnails, checkpoints) runs
    inline: on a :class:`VirtualClock` a thread's work would let time run on meanwhile."""
    monkeypatch.setattr(asyncio, "to_thread", _inline)
