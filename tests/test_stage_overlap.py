"""No barrier between stages (#10.4): in a chain, an edit starts as soon as the image it edits is on disk,
not after every generation has been submitted. Measured in virtual time (runner_harness.VirtualClock), so
a run of minutes takes seconds and the figures are exact, whatever the machine's speed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from runner_harness import (
    KONTEXT,
    SCHNELL,
    VirtualClock,
    chain_jobs,
    run_session,
    threads_inline,  # noqa: F401  (a fixture)
)

from flux_batch.simulator import SimConfig, create_app

pytestmark = pytest.mark.usefixtures("threads_inline")


async def overlap(out: Path, pairs: int, max_in_flight: int, create_rpm: float) -> tuple[float, float, int]:
    """``(first edit created, last generation done)`` in seconds from the run's start, and how many
    generations were created before the first edit."""
    clock = VirtualClock()
    app = create_app(SimConfig(latency=1.0, create_rpm=0), clock=clock, sleep=clock.sleep)
    start = clock.now
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        run = run_session(
            http, "http://simulator.local/v1", chain_jobs(pairs), out, clock,
            create_rpm=create_rpm, max_in_flight=max_in_flight, thumbnails=False,
        )  # fmt: skip
        result = await clock.drive(run)
    assert result.counts == {"succeeded": 2 * pairs}
    made = app.store.order
    first_edit = min(p.created for p in made if p.model == KONTEXT)
    last_base = max(p.done for p in made if p.model == SCHNELL)
    before = sum(1 for p in made if p.model == SCHNELL and p.created < first_edit)
    return first_edit - start, last_base - start, before


async def test_the_first_edit_starts_long_before_the_last_generation_ends(tmp_path: Path) -> None:
    # 30 generations and 30 edits at 120 creates a minute take about 30 s to create; the first
    # generation is done after about a second.
    first_edit, last_base, before = await overlap(tmp_path, 30, max_in_flight=10, create_rpm=120)
    assert last_base > 20
    assert first_edit < 0.1 * last_base  # was: after the last generation's create
    assert before <= 10  # those already started when the first image came; was: all 30


@pytest.mark.slow
async def test_a_thousand_and_a_thousand_overlap(tmp_path: Path) -> None:
    first_edit, last_base, before = await overlap(tmp_path, 1000, max_in_flight=100, create_rpm=600)
    assert last_base > 100  # 2,000 creates at 600 a minute
    assert first_edit < 0.03 * last_base
    assert before <= 100
