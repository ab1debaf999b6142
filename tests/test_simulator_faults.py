"""Fault schedules (pure) and every fault kind as a client sees it, in-process."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from flux_batch.simulator import FaultSpec, SimConfig
from flux_batch.simulator.faults import FaultPlan
from flux_batch.testing import in_process

FLUX_PRO = "/models/black-forest-labs/flux-pro/predictions"
BODY = {"input": {"prompt": "x"}}


def fired_on(plan: FaultPlan, n: int, endpoint: str = "create") -> list[int]:
    return [i for i in range(1, n + 1) if plan.draw(endpoint)]


def test_schedules_every_range_after() -> None:
    assert fired_on(FaultPlan((FaultSpec("create_5xx", every=3),), 0), 10) == [3, 6, 9]
    assert fired_on(FaultPlan((FaultSpec("create_5xx", requests=(4, 6)),), 0), 10) == [4, 5, 6]
    assert fired_on(FaultPlan((FaultSpec("unauthorized", after=8),), 0), 10, "get") == [8, 9, 10]
    assert fired_on(FaultPlan((FaultSpec("create_5xx"),), 0), 3) == [1, 2, 3]


def test_probability_is_reproducible_with_the_seed_and_independent_of_other_faults() -> None:
    spec = FaultSpec("create_5xx", probability=0.3)
    first = fired_on(FaultPlan((spec,), seed=5), 200)
    assert first == fired_on(FaultPlan((spec,), seed=5), 200)
    assert first != fired_on(FaultPlan((spec,), seed=6), 200)
    assert 30 < len(first) < 90
    plan = FaultPlan((spec, FaultSpec("slow", probability=0.5)), seed=5)
    assert [i for i in range(1, 201) if any(f.kind == "create_5xx" for f in plan.draw("create"))] == first


def test_faults_count_only_their_endpoints() -> None:
    plan = FaultPlan((FaultSpec("create_5xx", every=2),), 0)
    assert plan.draw("get") == [] and plan.draw("create") == [] and plan.draw("create") != []
    assert FaultSpec("html_5xx").applies_to("list") and not FaultSpec("html_5xx").applies_to("output")
    assert FaultSpec("html_5xx", on=("output",)).applies_to("output")


async def test_create_5xx_creates_nothing() -> None:
    async with in_process(SimConfig(faults=(FaultSpec("create_5xx", every=2),))) as (client, app, _clock):
        assert (await client.post(FLUX_PRO, json=BODY)).status_code == 201
        failed = await client.post(FLUX_PRO, json=BODY)
        assert failed.status_code == 503 and failed.json()["status"] == 503
        assert app.stats()["predictions_created"] == 1


async def test_ambiguous_create_5xx_creates_the_prediction() -> None:
    async with in_process(SimConfig(faults=(FaultSpec("ambiguous_create", requests=(1, 1)),))) as (
        client,
        app,
        _c,
    ):
        assert (await client.post(FLUX_PRO, json=BODY)).status_code == 502
        assert app.stats()["predictions_created"] == 1
        listed = (await client.get("/predictions")).json()["results"]
        assert [p["input"] for p in listed] == [BODY["input"]]


async def test_ambiguous_create_drop_is_a_transport_error_after_creating() -> None:
    config = SimConfig(faults=(FaultSpec("ambiguous_create", mode="drop"),))
    async with in_process(config) as (client, app, _clock):
        with pytest.raises(httpx.TransportError):
            await client.post(FLUX_PRO, json=BODY)
        assert app.stats()["predictions_created"] == 1
        assert app.stats()["requests"]["POST /v1/models/{owner}/{name}/predictions"] == {"dropped": 1}


async def test_reset_drops_any_request_without_acting() -> None:
    async with in_process(SimConfig(faults=(FaultSpec("reset", requests=(1, 1)),))) as (client, app, _clock):
        with pytest.raises(httpx.TransportError):
            await client.post(FLUX_PRO, json=BODY)
        assert app.stats()["predictions_created"] == 0
        assert (await client.post(FLUX_PRO, json=BODY)).status_code == 201


async def test_html_5xx_pages_on_any_endpoint() -> None:
    config = SimConfig(seed=3, faults=(FaultSpec("html_5xx", on=("get", "list")),))
    async with in_process(config) as (client, _app, _clock):
        assert (await client.post(FLUX_PRO, json=BODY)).status_code == 201
        for path in ("/predictions", "/predictions/abc"):
            response = await client.get(path)
            assert response.status_code in (500, 502, 503)
            assert response.headers["content-type"] == "text/html" and response.text.startswith("<html>")
    async with in_process(SimConfig(faults=(FaultSpec("html_5xx", status=502),))) as (client, _app, _clock):
        assert (await client.get("/predictions")).status_code == 502


async def test_slow_responses_sleep_on_the_injected_clock() -> None:
    config = SimConfig(faults=(FaultSpec("slow", delay=7.5),))
    async with in_process(config) as (client, _app, clock):
        assert (await client.get("/predictions")).status_code == 200
        assert clock.slept == [7.5]


async def test_content_filter_fails_the_prediction() -> None:
    config = SimConfig(latency=1, faults=(FaultSpec("content_filter"),))
    async with in_process(config) as (client, app, clock):
        pid = (await client.post(FLUX_PRO, json=BODY)).json()["id"]
        clock.advance(30)
        body = (await client.get(f"/predictions/{pid}")).json()
        assert body["status"] == "failed" and body["output"] is None
        assert "flagged as sensitive" in body["error"] and body["error"].endswith("(E005)")
        assert app.stats()["cost_usd"] == 0


async def test_latency_spike_multiplies_the_run_time() -> None:
    config = SimConfig(latency=2, faults=(FaultSpec("latency_spike", requests=(2, 2), factor=100),))
    async with in_process(config) as (_client, app, _clock):
        await _client.post(FLUX_PRO, json=BODY)
        await _client.post(FLUX_PRO, json=BODY)
        normal, spiked = app.store.order
        assert spiked.done - spiked.created > 20 * (normal.done - normal.created)


async def test_truncated_and_wrong_length_downloads() -> None:
    faults = (FaultSpec("truncated_download", requests=(1, 1)), FaultSpec("wrong_length", requests=(2, 2)))
    async with in_process(SimConfig(latency=0, faults=faults)) as (client, _app, _clock):
        url = (await client.post(FLUX_PRO, json={"input": {"prompt": "x", "output_format": "png"}})).json()[
            "output"
        ]
        cut = await client.get(url)
        assert int(cut.headers["content-length"]) == len(cut.content)
        with pytest.raises(OSError):
            Image.open(io.BytesIO(cut.content)).load()
        lying = await client.get(url)
        assert int(lying.headers["content-length"]) > len(lying.content)
        whole = await client.get(url)
        assert len(whole.content) == 2 * len(cut.content) or len(whole.content) == 2 * len(cut.content) + 1
        Image.open(io.BytesIO(whole.content)).load()


async def test_unauthorized_and_billing_from_a_request_on() -> None:
    faults = (FaultSpec("unauthorized", after=3), FaultSpec("billing", after=2))
    async with in_process(SimConfig(faults=faults)) as (client, _app, _clock):
        assert (await client.post(FLUX_PRO, json=BODY)).status_code == 201
        billing = await client.post(FLUX_PRO, json=BODY)
        assert billing.status_code == 402 and billing.json()["title"] == "Billing required"
        assert (await client.get("/predictions")).status_code == 401
        assert (await client.get("/predictions")).status_code == 401


async def test_flaky_file_fails_only_files_not_served_yet() -> None:
    faults = (FaultSpec("flaky_file", requests=(1, 2)), FaultSpec("flaky_file", every=4, status=503))
    async with in_process(SimConfig(latency=0, faults=faults)) as (client, app, _clock):
        urls = [(await client.post(FLUX_PRO, json=BODY)).json()["output"] for _ in range(2)]
        # Its first two requests fail (a CDN not caught up), then it is served, and from then on always.
        assert [(await client.get(urls[0])).status_code for _ in range(3)] == [404, 404, 200]
        assert [(await client.get(urls[0])).status_code for _ in range(3)] == [200, 200, 200]
        # Counted only on requests for files not served yet: the second file's 4th is its first request.
        assert [(await client.get(urls[1])).status_code for _ in range(2)] == [503, 200]
        assert app.stats()["faults_fired"] == {"flaky_file": 3}
        assert app.stats()["requests"]["GET /delivery/{id}/{file}"] == {"404": 2, "200": 5, "503": 1}
