"""Ambiguous-create reconciliation: matching, time window, known ids, unsupported listing, the policy; and
against the simulator, a busy run with a skewed clock re-attaching with few list calls and no duplicate."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from runner_harness import SCHNELL, Sim, base_jobs, run, simulator

from flux_batch.jobs import Job
from flux_batch.models.catalog import get_model
from flux_batch.runner.client import ApiClient, parse_prediction
from flux_batch.runner.clock_offset import Window
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.reconcile import Found, find_created, iso_utc, matches, should_create_again
from flux_batch.runner.session import ApiTarget, run_jobs
from flux_batch.runner.state.store import Store
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.config import FaultSpec

NOW = 1_750_000_000.0
WINDOW = Window(NOW - 1, NOW + 10)


def item(pid: str, seconds_after: float, **inp: object) -> dict[str, object]:
    return {
        "id": pid,
        "status": "starting",
        "model": "a/b",
        "input": inp,
        "created_at": iso_utc(NOW + seconds_after),
    }


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> ApiClient:
    return ApiClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://api/v1", "t")


def test_matches_compares_canonical_input_and_model() -> None:
    p = parse_prediction(item("x", 0, prompt="cat", guidance=3.0))
    assert matches(p, "a/b", None, {"guidance": 3, "prompt": "cat"})
    assert not matches(p, "a/c", None, {"guidance": 3, "prompt": "cat"})
    assert not matches(p, "a/b", None, {"guidance": 4, "prompt": "cat"})


async def test_finds_the_unknown_match_in_the_window() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.params["created_after"], request.url.params["created_before"]))
        results = [  # a server that ignores created_before: "later" is past the window
            item("later", 20, prompt="cat"),
            item("new", 5, prompt="dog"),
            item("mine", 2, prompt="cat"),
            item("older", 1, prompt="cat"),
            item("old", -3600, prompt="cat"),
        ]
        return httpx.Response(200, json={"results": results, "next": None})

    found = await find_created(
        client_for(handler),
        model="a/b",
        version=None,
        sent_input={"prompt": "cat"},
        window=WINDOW,
        is_known=lambda i: False,
    )
    assert found.listed and found.prediction is not None and found.prediction.id == "older"  # oldest wins
    assert seen == [(iso_utc(NOW - 1), iso_utc(NOW + 10))]

    known = await find_created(
        client_for(handler), model="a/b", version=None, sent_input={"prompt": "cat"}, window=WINDOW,
        is_known=lambda i: i in ("mine", "older"),
    )  # fmt: skip
    assert known == Found(None, listed=True)


async def test_unsupported_listing_and_policy() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "not here"})

    found = await find_created(
        client_for(handler), model="a/b", version=None, sent_input={}, window=WINDOW, is_known=lambda i: False
    )
    assert found == Found(None, listed=False)
    assert should_create_again(found, "create") and not should_create_again(found, "fail")
    assert should_create_again(Found(None, listed=True), "fail")


@pytest.mark.slow  # 12,000 predictions in the simulator (3-7 s each)
@pytest.mark.parametrize("skew", [90.0, -90.0])
async def test_a_busy_account_with_a_skewed_clock_reattaches_with_few_list_calls(
    tmp_path: Path, skew: float
) -> None:
    """The account made 100 predictions/s for the two minutes before the run; from the run's 20th create on,
    every 10th is made and then answered 502 and every 15th dropped. This machine's clock is ``skew`` s off
    the simulator's. A blind minute's margin would scan up to 60 pages of those predictions for each
    (and, at +90, miss the one it looks for and pay twice)."""
    faults = (
        FaultSpec("ambiguous_create", every=10, after=20),
        FaultSpec("ambiguous_create", every=15, after=20, mode="drop"),
    )
    sim = simulator(SimConfig(latency=1.0, faults=faults))
    # The simulator holds each create (Prefer: wait) in 1 ms steps of the shared fake clock: each sleep
    # moves that clock by its whole length, so with its usual 0.5 s steps a hundred holds in flight made
    # every answer reach the client tens of (fake) seconds after the prediction ended, and the bracket of
    # the clock offset, which trusts only what answers prove, that wide.
    sim.app = create_app(sim.app.config, clock=sim.clock, sleep=lambda s: sim.clock.sleep(min(s, 0.001)))
    sim.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app))
    start = sim.clock()
    schnell = get_model(SCHNELL)
    for i in range(12_000):
        sim.app.store.create(
            schnell, "v", {"prompt": "neighbour", "seed": i}, start - 120 + i / 100, latency=1.0
        )
    result = await run_jobs(
        base_jobs(200),
        RunSettings(out_dir=tmp_path),
        ApiTarget(sim.base_url, "r8_test"),
        sim.http,
        clock=sim.clock,
        wall_clock=lambda: sim.clock() + skew,
        sleep=sim.clock.sleep,
        rng=random.Random(3),
        report=False,
        thumbnails=False,
    )
    stats = sim.stats()
    ambiguous = result.summary["ambiguous_creates"]
    lists = sum(stats["requests"]["GET /v1/predictions"].values())
    assert result.counts == {"succeeded": 200}
    assert ambiguous >= 15 and result.summary["reattached"] == ambiguous
    assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 12_000 + 200
    assert lists <= 2 * ambiguous


class Delayed(httpx.AsyncBaseTransport):
    """The simulator in-process, where the first ``slow`` creates leave this machine ``delay`` seconds
    (fake clock) after their intent was recorded, as on a busy disk whose fsync of the intent took that
    long; and where ``land`` (``(at, input)``), a create sent by a killed run, reaches the API only at
    that time: the simulator makes it before answering the first request from then on."""

    def __init__(self, sim: Sim, slow: int = 0, delay: float = 0.0) -> None:
        self.sim = sim
        self.inner = httpx.ASGITransport(app=sim.app)
        self.slow = slow
        self.delay = delay
        self.land: tuple[float, dict[str, object]] | None = None

    def land_if_due(self) -> None:
        if self.land is not None and self.sim.clock() >= self.land[0]:
            at, sent = self.land
            self.sim.app.store.create(get_model(SCHNELL), "hidden", dict(sent), at, latency=1.0)
            self.land = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/predictions") and self.slow > 0:
            self.slow -= 1
            await self.sim.clock.sleep(self.delay)
        self.land_if_due()
        return await self.inner.handle_async_request(request)


def delayed(sim: Sim, **kw: float) -> tuple[Sim, Delayed]:
    transport = Delayed(sim, **kw)  # type: ignore[arg-type]
    return Sim(sim.app, httpx.AsyncClient(transport=transport), sim.clock, sim.base_url), transport


async def test_a_create_faster_than_the_first_ones_of_the_run_is_found(tmp_path: Path) -> None:
    """#9.6: the first three creates of the run take 1.5 s to leave (the window's lower edge was the send
    time + the smallest created_at - send time - 1 s, learnt from them); the fourth leaves at once, is
    made and answered 502: it must be found and re-attached, not created again."""
    sim, _ = delayed(
        simulator(SimConfig(latency=1.0, faults=(FaultSpec("ambiguous_create", requests=(4, 4)),))),
        slow=3,
        delay=1.5,
    )
    result = await run(sim, base_jobs(6), tmp_path, max_in_flight=1)
    assert result.counts == {"succeeded": 6}
    assert result.summary["ambiguous_creates"] == 1 and result.summary["reattached"] == 1
    stats = sim.stats()
    assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 6


def killed_with_an_intent(sim: Sim, jobs: list[tuple[Job, float | None]], folder: Path) -> dict[str, Any]:
    """A run's state in ``folder`` holding ``jobs``, where the first one's create intent was recorded now
    and never answered (the run was killed): returns the input it sent."""
    store = Store.open(folder, clock=sim.clock)
    store.begin_ingest()
    store.add_jobs(jobs)
    store.prepare_run()
    first = jobs[0][0].id
    sent = store.job(first).send_input()
    store.begin_attempt(first, sent, sim.clock())
    store.close()
    return sent


async def test_a_killed_runs_create_still_on_its_way_is_waited_for(tmp_path: Path) -> None:
    """#9.6: a run recorded its intent, sent the create and was killed; the request reaches the API two
    seconds later, after the next run has started. The resumed job must not conclude "not created" (and
    create again) before the request can have arrived."""
    sim, transport = delayed(simulator(SimConfig(latency=1.0)))
    jobs = base_jobs(3)
    sent = killed_with_an_intent(sim, jobs, tmp_path)
    sim.clock.now += 0.3  # killed
    transport.land = (sim.clock() + 2.0, sent)
    result = await run(sim, jobs, tmp_path)
    sim.clock.now += 60
    transport.land_if_due()  # arrived by now in any case
    assert result.counts == {"succeeded": 3} and result.summary["reattached"] == 1
    stats = sim.stats()
    assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 3


async def test_a_create_whose_intent_took_long_to_be_durable_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second create's intent takes 90 s (fake clock) to be fsynced (a stalled disk), so the request
    leaves 90 s after its intent was recorded; it is made and answered 502. The window's upper edge was
    the intent + MAX_SEND_S + LANDING_S (80 s): the prediction, made after it, was not found and was
    created again (paid twice). The send timeouts bound the time from the send, not from the intent: it
    must be found and re-attached."""
    sim = simulator(SimConfig(latency=1.0, faults=(FaultSpec("ambiguous_create", requests=(2, 2)),)))
    fsyncs = 0
    sync_wal = Store.sync_wal

    def stalled(store: Store) -> None:
        nonlocal fsyncs
        fsyncs += 1
        if fsyncs == 2:
            sim.clock.now += 90.0
        sync_wal(store)

    monkeypatch.setattr(Store, "sync_wal", stalled)
    result = await run(sim, base_jobs(3), tmp_path, max_in_flight=1)
    assert fsyncs >= 2
    assert result.counts == {"succeeded": 3}
    assert result.summary["ambiguous_creates"] == 1 and result.summary["reattached"] == 1
    stats = sim.stats()
    assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 3


async def test_a_killed_runs_create_that_waited_long_for_its_token_is_found(tmp_path: Path) -> None:
    """A run recorded its intent, waited 150 s (fake clock) for its fsync and its limiter token (a throttled
    account), sent the create, which was made, and was killed before the answer. The resumed job does not
    know when it was sent: its window must reach the resume, not end MAX_SEND_S + LANDING_S after the
    intent (it was created again: paid twice)."""
    sim = simulator(SimConfig(latency=1.0))
    jobs = base_jobs(3)
    sent = killed_with_an_intent(sim, jobs, tmp_path)
    sim.clock.now += 150.0  # waiting for its token
    sim.app.store.create(get_model(SCHNELL), "hidden", dict(sent), sim.clock(), latency=1.0)
    sim.clock.now += 0.3  # killed
    result = await run(sim, jobs, tmp_path)
    assert result.counts == {"succeeded": 3} and result.summary["reattached"] == 1
    stats = sim.stats()
    assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 3
