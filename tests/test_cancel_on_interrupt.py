"""``--cancel-on-interrupt`` with the default ``--wait 60`` (#10.5): a create held by ``Prefer: wait`` has
no prediction id yet, yet every prediction in flight is canceled within seconds of Ctrl-C, and nothing is
created twice. In virtual time (runner_harness.VirtualClock), so "within seconds" is measured exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from runner_harness import (
    VirtualClock,
    base_jobs,
    run_session,
    threads_inline,  # noqa: F401  (a fixture)
)

from flux_batch.runner.executor import Executor
from flux_batch.runner.progress import Event
from flux_batch.runner.session import SessionResult
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.app import SimulatorApp

pytestmark = pytest.mark.usefixtures("threads_inline")


async def interrupted_run(
    out: Path, config: SimConfig, jobs: int, notices: list[str]
) -> tuple[SessionResult, SimulatorApp, float]:
    """Run ``jobs`` with cancel_on_interrupt and the default wait; press Ctrl-C once every create is held.
    Returns the result, the simulator and the seconds from Ctrl-C to the end of the run."""
    clock = VirtualClock()
    app = create_app(config, clock=clock, sleep=clock.sleep)
    holder: list[Executor] = []
    pressed: list[float] = []

    def on_event(event: Event, _tracker: Any) -> None:
        if event.kind == "notice":
            notices.append(event.message)

    async def press_ctrl_c() -> None:
        while len(app.store.predictions) < jobs:
            await clock.sleep(0.1)
        await clock.sleep(1.0)  # the creates are held, waiting for their predictions
        pressed.append(clock.now)
        holder[0].interrupt()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:

        async def both() -> SessionResult:
            ctrl_c = asyncio.ensure_future(press_ctrl_c())
            try:
                return await run_session(
                    http, "http://simulator.local/v1", base_jobs(jobs), out, clock,
                    max_in_flight=jobs, cancel_on_interrupt=True, thumbnails=False,
                    on_executor=holder.append, on_event=on_event,
                )  # fmt: skip
            finally:
                ctrl_c.cancel()

        result = await clock.drive(both())
    return result, app, clock.now - pressed[0]


async def test_creates_held_by_prefer_wait_are_canceled_within_seconds(tmp_path: Path) -> None:
    notices: list[str] = []
    result, app, took = await interrupted_run(tmp_path, SimConfig(latency=20.0), 6, notices)
    by_status = app.stats()["predictions_by_status"]
    assert by_status == {"canceled": 6}  # was: none canceled, all 6 ran to completion and were billed
    assert took < 5
    assert result.result.interrupted and result.counts == {"pending": 6}
    assert app.stats()["duplicate_predictions"] == 0
    assert any("canceling 6 in flight" in n for n in notices)


async def test_without_listing_held_creates_are_not_given_up(tmp_path: Path) -> None:
    """Where predictions cannot be listed, a create given up could never be found again (and the next run
    might pay twice): the held creates are left to answer, and the run says so."""
    notices: list[str] = []
    config = SimConfig(latency=20.0, list_supported=False)
    result, app, _ = await interrupted_run(tmp_path, config, 3, notices)
    assert app.stats()["predictions_created"] == 3 and app.stats()["duplicate_predictions"] == 0
    assert any("cannot list" in n for n in notices)
    assert result.counts.get("submitted", 0) == 0  # every held create answered and was recorded
