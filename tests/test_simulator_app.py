"""The simulator's API in-process: create, get, lifecycle, waiting, cancel, list, validation, auth, stats."""

from __future__ import annotations

from flux_batch.simulator import SimConfig
from flux_batch.simulator.testing import in_process

FLUX_PRO = "/models/black-forest-labs/flux-pro/predictions"
SCHNELL = "/models/black-forest-labs/flux-schnell/predictions"


async def test_create_then_get_runs_the_lifecycle() -> None:
    async with in_process(SimConfig(latency=4)) as (client, _app, clock):
        created = await client.post(FLUX_PRO, json={"input": {"prompt": "a fox", "seed": 7}})
        assert created.status_code == 201
        body = created.json()
        assert body["status"] == "starting" and body["version"] == "hidden" and body["output"] is None
        assert len(body["id"]) == 26 and body["created_at"].endswith("Z")
        assert body["urls"]["get"] == f"http://simulator.local/v1/predictions/{body['id']}"
        clock.advance(3600 * 0 + 60)
        done = (await client.get(f"/predictions/{body['id']}")).json()
        assert done["status"] == "succeeded"
        assert "Using seed: 7" in done["logs"]
        assert done["metrics"]["image_count"] == 1 and done["metrics"]["predict_time"] > 0
        image = await client.get(done["output"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/webp"


async def test_stats_count_routes_duplicates_and_cost() -> None:
    async with in_process(SimConfig(latency=0)) as (client, app, _clock):
        for _ in range(2):
            await client.post(SCHNELL, json={"input": {"prompt": "same", "num_outputs": 2}})
        await client.get("/predictions/nope")
        stats = app.stats()
        assert stats["requests"]["POST /v1/models/{owner}/{name}/predictions"] == {"201": 2}
        assert stats["requests"]["GET /v1/predictions/{id}"] == {"404": 1}
        assert stats["predictions_created"] == 2 and stats["duplicate_predictions"] == 1
        assert stats["cost_usd"] == 0.012
        over_http = (await client.get("http://simulator.local/_simulator/stats")).json()
        assert over_http["predictions_created"] == 2
        await client.post("http://simulator.local/_simulator/reset")
        assert app.stats()["predictions_created"] == 0 and app.stats()["requests"] == {}


async def test_missing_token_is_401_problem_json() -> None:
    async with in_process(token=None) as (client, _app, _clock):
        response = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
