"""The simulator's API in-process: create, get, lifecycle, waiting, cancel, list, files, validation, auth,
limits and statistics. Time is a fake clock; nothing sleeps."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from flux_batch.simulator import SimConfig
from flux_batch.testing import START, in_process

FLUX_PRO = "/models/black-forest-labs/flux-pro/predictions"
SCHNELL = "/models/black-forest-labs/flux-schnell/predictions"
KONTEXT = "/models/black-forest-labs/flux-kontext-pro/predictions"


async def test_create_then_get_runs_the_lifecycle() -> None:
    async with in_process(SimConfig(latency=4)) as (client, _app, clock):
        created = await client.post(FLUX_PRO, json={"input": {"prompt": "a fox", "seed": 7}})
        assert created.status_code == 201
        body = created.json()
        assert body["status"] == "starting" and body["version"] == "hidden" and body["output"] is None
        assert len(body["id"]) == 26 and body["id"].isalnum() and body["id"] == body["id"].lower()
        assert body["created_at"] == "2025-06-15T15:06:40.000Z" and body["source"] == "api"
        assert body["urls"]["get"] == f"http://simulator.local/v1/predictions/{body['id']}"
        assert body["urls"]["cancel"].endswith(f"/predictions/{body['id']}/cancel")
        assert body["urls"]["stream"] == f"http://simulator.local/stream/{body['id']}"
        clock.advance(60)
        done = (await client.get(f"/predictions/{body['id']}")).json()
        assert done["status"] == "succeeded" and done["error"] is None
        assert "Using seed: 7" in done["logs"]
        metrics = done["metrics"]
        assert metrics["image_count"] == 1 and 0 < metrics["predict_time"] < metrics["total_time"]
        assert done["started_at"] < done["completed_at"]
        assert re.fullmatch(r"2025-06-15T15:06:4\d\.\d{9}Z", done["completed_at"]), done["completed_at"]
        image = await client.get(done["output"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(image.content)).size == (1024, 1024)


async def test_processing_in_between_and_random_seed_logged() -> None:
    async with in_process(SimConfig(latency=10)) as (client, app, clock):
        pid = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()["id"]
        prediction = app.store.predictions[pid]
        clock.now = (prediction.started + prediction.done) / 2
        body = (await client.get(f"/predictions/{pid}")).json()
        assert body["status"] == "processing" and body["output"] is None and "completed_at" not in body
        assert f"Using seed: {prediction.seed}" in body["logs"]


async def test_list_output_for_schnell_and_create_by_version() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        body = (await client.post(SCHNELL, json={"input": {"prompt": "x", "num_outputs": 3}})).json()
        assert isinstance(body["output"], list) and len(body["output"]) == 3
        assert body["metrics"]["image_count"] == 3
        by_version = await client.post(
            "/predictions", json={"version": "black-forest-labs/flux-pro", "input": {"prompt": "x"}}
        )
        assert by_version.status_code == 201 and by_version.json()["model"] == "black-forest-labs/flux-pro"
        pinned = await client.post(
            "/predictions",
            json={"version": f"black-forest-labs/flux-pro:{'a' * 64}", "input": {"prompt": "x"}},
        )
        assert pinned.json()["version"] == "a" * 64


async def test_every_version_form_the_api_takes() -> None:
    """Defect #11.5: the official clients send a pinned version as a bare 64-hex id."""
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        model = (await client.get("/models/black-forest-labs/flux-schnell")).json()
        version = model["latest_version"]["id"]
        assert re.fullmatch(r"[0-9a-f]{64}", version)
        for ref in (version, f"black-forest-labs/flux-schnell:{version}", "black-forest-labs/flux-schnell"):
            created = await client.post("/predictions", json={"version": ref, "input": {"prompt": "x"}})
            assert created.status_code == 201, (ref, created.text)
            body = created.json()
            assert body["model"] == "black-forest-labs/flux-schnell" and isinstance(body["output"], list)
            assert body["version"] == (version if ":" in ref or "/" not in ref else "hidden")
        unknown = await client.post("/predictions", json={"version": "b" * 64, "input": {"prompt": "x"}})
        assert unknown.status_code == 422 and "b" * 64 in unknown.json()["detail"]
        # A version named with its model once (a real pinned id the simulator could not know) is learnt.
        named = f"black-forest-labs/flux-pro:{'c' * 64}"
        learnt = await client.post("/predictions", json={"version": named, "input": {"prompt": "x"}})
        assert learnt.status_code == 201
        bare = await client.post("/predictions", json={"version": "c" * 64, "input": {"prompt": "x"}})
        assert bare.status_code == 201 and bare.json()["model"] == "black-forest-labs/flux-pro"
        got = await client.get(f"/models/black-forest-labs/flux-pro/versions/{'c' * 64}")
        assert got.status_code == 200 and got.json()["id"] == "c" * 64
        mixed = f"black-forest-labs/flux-dev:{version}"
        other = await client.post("/predictions", json={"version": mixed, "input": {"prompt": "x"}})
        assert other.status_code == 422  # flux-schnell's version is not flux-dev's


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (FLUX_PRO, {"input": {"prompt": "x", "guidance": 9}}, 422, "input.guidance"),
        (FLUX_PRO, {"input": {"prompt": "x", "guidanse": 3}}, 422, "guidanse"),
        (FLUX_PRO, {"input": {}}, 422, "prompt"),
        (FLUX_PRO, {"input": {"prompt": "x"}, "extra": 1}, 422, "extra"),
        (FLUX_PRO, {"prompt": "x"}, 422, "prompt"),
        (FLUX_PRO, {"input": "x"}, 422, "input"),
        ("/models/black-forest-labs/flux-nope/predictions", {"input": {"prompt": "x"}}, 404, "flux-nope"),
        ("/predictions", {"version": "someone/unknown", "input": {"prompt": "x"}}, 404, "someone/unknown"),
    ],
)
async def test_bad_creates_are_problem_json(
    path: str, body: dict[str, object], status: int, needle: str
) -> None:
    async with in_process() as (client, app, _clock):
        response = await client.post(path, json=body)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == status and needle in problem["detail"]
        assert app.stats()["predictions_created"] == 0


async def test_width_without_custom_is_only_a_warning() -> None:
    async with in_process() as (client, _app, _clock):
        seed_page_input = {
            "prompt": "cake",
            "width": 1024,
            "height": 1024,
            "aspect_ratio": "1:1",
            "steps": 25,
        }
        response = await client.post(FLUX_PRO, json={"input": seed_page_input})
        assert response.status_code == 201


async def test_prefer_wait_holds_until_done_and_echoes_preference() -> None:
    async with in_process(SimConfig(latency=5)) as (client, _app, clock):
        response = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}}, headers={"Prefer": "wait"})
        assert response.status_code == 201 and response.json()["status"] == "succeeded"
        assert response.headers["preference-applied"] == "wait=60"
        assert 0 < sum(clock.slept) < 60


async def test_prefer_wait_n_returns_unfinished_after_n_seconds() -> None:
    async with in_process(SimConfig(latency=400)) as (client, _app, clock):
        response = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}}, headers={"Prefer": "wait=3"})
        assert response.status_code == 202 and response.json()["status"] in ("starting", "processing")
        assert response.headers["preference-applied"] == "wait=3"
        assert sum(clock.slept) == pytest.approx(3)


async def test_cancel_and_cancel_after() -> None:
    async with in_process(SimConfig(latency=100)) as (client, _app, clock):
        pid = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()["id"]
        clock.advance(50)
        canceled = (await client.post(f"/predictions/{pid}/cancel")).json()
        assert canceled["status"] == "canceled" and canceled["output"] is None and "started_at" in canceled
        late = await client.post(FLUX_PRO, json={"input": {"prompt": "y"}}, headers={"Cancel-After": "5s"})
        assert "deadline" in late.json()
        clock.advance(6)
        assert (await client.get(f"/predictions/{late.json()['id']}")).json()["status"] == "aborted"
        running = await client.post(FLUX_PRO, json={"input": {"prompt": "z"}}, headers={"Cancel-After": "1m"})
        clock.advance(61)
        assert (await client.get(f"/predictions/{running.json()['id']}")).json()["status"] == "canceled"
        too_short = await client.post(
            FLUX_PRO, json={"input": {"prompt": "z"}}, headers={"Cancel-After": "2"}
        )
        assert too_short.status_code == 422


async def test_retention_removes_output_and_file() -> None:
    async with in_process(SimConfig(latency=1, retention=60)) as (client, _app, clock):
        pid = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()["id"]
        clock.advance(10)
        url = (await client.get(f"/predictions/{pid}")).json()["output"]
        assert (await client.get(url)).status_code == 200
        clock.advance(60)
        gone = (await client.get(f"/predictions/{pid}")).json()
        assert gone["output"] is None and gone["data_removed"] is True and gone["status"] == "succeeded"
        assert gone["input"] == {} and gone["logs"] == ""
        assert (await client.get(url)).status_code == 404


async def test_list_newest_first_paginated_and_filtered() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, clock):
        ids = []
        for i in range(230):
            ids.append((await client.post(FLUX_PRO, json={"input": {"prompt": f"p{i}"}})).json()["id"])
            clock.advance(1)
        first = (await client.get("/predictions")).json()
        assert [p["id"] for p in first["results"]] == ids[::-1][:100]
        assert (
            first["next"].startswith("http://simulator.local/v1/predictions?") and first["previous"] is None
        )
        second = (await client.get(first["next"])).json()
        third = (await client.get(second["next"])).json()
        assert [p["id"] for p in second["results"] + third["results"]] == ids[::-1][100:]
        assert third["next"] is None
        window = (
            await client.get(
                "/predictions",
                params={
                    "created_after": "2025-06-15T15:06:50Z",
                    "created_before": "2025-06-15T15:07:00.0000000+00:00",
                },
            )
        ).json()
        assert [p["id"] for p in window["results"]] == ids[10:20][::-1]
        assert (await client.get("/predictions", params={"cursor": "bogus!"})).status_code == 400


async def test_list_next_keeps_filters_and_unsupported_list_is_404() -> None:
    async with in_process(SimConfig(latency=0, create_rpm=0)) as (client, _app, _clock):
        for i in range(101):
            await client.post(FLUX_PRO, json={"input": {"prompt": f"p{i}"}})
        page = (await client.get("/predictions", params={"created_after": "2025-01-01T00:00:00Z"})).json()
        query = parse_qs(urlsplit(page["next"]).query)
        assert query["created_after"] == ["2025-01-01T00:00:00Z"] and "cursor" in query
    async with in_process(SimConfig(list_supported=False)) as (client, _app, _clock):
        assert (await client.get("/predictions")).status_code == 404


async def test_upload_download_and_kontext_matches_input_size() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        picture = io.BytesIO()
        Image.new("RGB", (640, 480), "red").save(picture, "PNG")
        files = {"content": ("photo.png", picture.getvalue(), "image/png")}
        uploaded = await client.post("/files", files=files, data={"metadata": '{"a": 1}'})
        assert uploaded.status_code == 201
        body = uploaded.json()
        assert body["size"] == len(picture.getvalue()) and body["metadata"] == {"a": 1}
        assert (await client.get(body["urls"]["get"])).json() == body
        download = await client.get(f"/files/{body['id']}/download")
        assert download.content == picture.getvalue()
        edit = {"input": {"prompt": "make it blue", "input_image": body["urls"]["get"]}}
        output = (await client.post(KONTEXT, json=edit)).json()["output"]
        image = Image.open(io.BytesIO((await client.get(output)).content))
        assert image.size == (640, 480) and image.format == "PNG"
        chained = {"input": {"prompt": "again", "input_image": output, "output_format": "jpg"}}
        second = (await client.post(KONTEXT, json=chained)).json()["output"]
        assert Image.open(io.BytesIO((await client.get(second)).content)).size == (640, 480)


async def test_files_base_url_puts_outputs_on_another_host() -> None:
    config = SimConfig(latency=0, files_base_url="http://files.example:9000/")
    async with in_process(config) as (client, _app, _clock):
        output = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()["output"]
        assert output.startswith("http://files.example:9000/delivery/")


async def test_token_restriction_and_missing_token() -> None:
    async with in_process(SimConfig(token="r8_right"), token="r8_wrong") as (client, _app, _clock):
        assert (await client.get("/predictions")).status_code == 401
    async with in_process(token=None) as (client, _app, _clock):
        response = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401


async def test_rate_limit_429_with_and_without_header() -> None:
    async with in_process(SimConfig(create_rpm=60, burst=2)) as (client, app, clock):
        responses = [await client.post(FLUX_PRO, json={"input": {"prompt": "x"}}) for _ in range(3)]
        assert [r.status_code for r in responses] == [201, 201, 429]
        assert [r.headers["ratelimit-remaining"] for r in responses] == ["1", "0", "0"]
        assert [r.headers["ratelimit-reset"] for r in responses] == ["1", "2", "2"]
        throttled = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        # The shape seen in the wild for the normal limits: no title, no retry_after; Retry-After on.
        assert throttled.json() == {
            "detail": "Request was throttled. Your rate limit resets in ~1s.",
            "status": 429,
        }
        assert throttled.headers["retry-after"] == "1"
        assert app.stats()["throttled"] == 2 and app.stats()["predictions_created"] == 2
        clock.advance(1)
        assert (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).status_code == 201
    async with in_process(SimConfig(low_credit=True, retry_after_header=False)) as (client, _app, _clock):
        await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        throttled = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        assert throttled.status_code == 429 and "retry-after" not in throttled.headers
        assert "reduced to 6 requests per minute with a burst of 1" in throttled.json()["detail"]
        assert throttled.json()["retry_after"] == 10 and "title" not in throttled.json()
    config = SimConfig(create_rpm=60, burst=1, rate_limit_body="problem")
    async with in_process(config) as (client, _app, _clock):
        await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        throttled = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()
        assert throttled["title"] == "Request was throttled" and throttled["retry_after"] == 1
    async with in_process(SimConfig(create_rpm=0, other_rpm=0)) as (client, _app, _clock):
        unlimited = await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        assert "ratelimit-remaining" not in unlimited.headers


async def test_stats_count_routes_duplicates_and_cost() -> None:
    async with in_process(SimConfig(latency=0)) as (client, app, _clock):
        for _ in range(2):
            await client.post(SCHNELL, json={"input": {"prompt": "same", "num_outputs": 2}})
        await client.post(SCHNELL, json={"input": {"num_outputs": 2, "prompt": "same", "seed": 1}})
        await client.get("/predictions/nope")
        stats = app.stats()
        assert stats["requests"]["POST /v1/models/{owner}/{name}/predictions"] == {"201": 3}
        assert stats["requests"]["GET /v1/predictions/{id}"] == {"404": 1}
        assert stats["predictions_created"] == 3 and stats["duplicate_predictions"] == 1
        assert stats["cost_usd"] == pytest.approx(0.018)
        over_http = (await client.get("http://simulator.local/_simulator/stats")).json()
        assert over_http["predictions_created"] == 3
        await client.post("http://simulator.local/_simulator/reset")
        assert app.stats()["predictions_created"] == 0 and app.stats()["requests"] == {}


async def test_created_at_follows_the_clock() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, clock):
        clock.now = START + 0.25
        body = (await client.post(FLUX_PRO, json={"input": {"prompt": "x"}})).json()
        assert body["created_at"] == "2025-06-15T15:06:40.250Z"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"input": {"prompt": "x", "guidance": NaN}}', {}, 400),  # NaN is not JSON
        (b'{"input": {"prompt": "x", "seed": Infinity}}', {}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400),  # nested past the parser's recursion limit
        (b"\xff\xfe{", {}, 400),
        (b'{"input": {"prompt": "x"}}', {"Cancel-After": "9" * 400}, 422),  # an infinite deadline
        (b'{"input": {"prompt": "x"}}', {"Cancel-After": "99999999999h"}, 422),  # past year 9999
        (b'{"input": {"prompt": "x"}, "webhook_events_filter": [{}]}', {}, 422),
        (b'{"input": {"prompt": "x"}, "webhook": 5}', {}, 422),
        (b'{"input": {"prompt": "x"}, "stream": "yes"}', {}, 422),
    ],
)
async def test_bad_create_bodies_and_headers_are_4xx_problems(
    body: bytes, headers: dict[str, str], status: int
) -> None:
    """Defect #11.4: no input makes the simulator answer 5xx (before: exceptions, or NaN echoed back)."""
    async with in_process(SimConfig(latency=0)) as (client, app, _clock):
        response = await client.post(
            FLUX_PRO, content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert app.stats()["predictions_created"] == 0


async def test_proxy_next_can_point_at_the_proxy() -> None:
    """A pass-through proxy's list page points ``next`` at api.replicate.com (a client that follows it
    sends its token there); ``proxy_next: proxy`` keeps it on the proxy."""
    proxy = "http://simulator.local/replicate/v1"
    for setting, expected in (("upstream", "https://api.replicate.com/v1/"), ("proxy", f"{proxy}/")):
        async with in_process(SimConfig(latency=0, create_rpm=0, proxy_next=setting)) as (
            client,
            _app,
            _clock,
        ):
            for i in range(101):
                await client.post(f"{proxy}{FLUX_PRO}", json={"input": {"prompt": str(i)}})
            page = (await client.get(f"{proxy}/predictions")).json()
            assert page["next"].startswith(f"{expected}predictions?cursor=")
            assert len((await client.get(proxy + page["next"].split("/v1", 1)[1])).json()["results"]) == 1


async def test_stream_sends_logs_outputs_then_done() -> None:
    async with in_process(SimConfig(latency=5)) as (client, _app, clock):
        body = (await client.post(SCHNELL, json={"input": {"prompt": "x", "num_outputs": 2}})).json()
        stream = await client.get(body["urls"]["stream"], headers={"Authorization": ""})
        assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
        events = [block.split("\n") for block in stream.text.strip().split("\n\n")]
        names = [lines[0].removeprefix("event: ") for lines in events]
        assert names[-3:] == ["output", "output", "done"] and set(names[:-3]) == {"logs"}
        done = (await client.get(f"/predictions/{body['id']}")).json()
        assert [lines[2].removeprefix("data: ") for lines in events[-3:-1]] == done["output"]
        assert clock.now >= START + 5 * 0.1  # it waited for the prediction instead of answering early
        canceled = (await client.post(FLUX_PRO, json={"input": {"prompt": "y"}})).json()
        await client.post(f"/predictions/{canceled['id']}/cancel")
        text = (await client.get(canceled["urls"]["stream"])).text
        assert text.rstrip().endswith('event: done\nid: 1\ndata: {"reason": "canceled"}')
        assert (await client.get("http://simulator.local/stream/nope")).status_code == 404


@pytest.mark.parametrize("typical", [False, True])
async def test_typical_latency_gives_each_model_its_typical_time(typical: bool) -> None:
    """With ``typical_latency`` a flux-2-flex prediction (23 s typical) takes about 23 s and a
    flux-schnell one (1 s) about 1 s, as ``plan`` counts them; without it both take ``latency``."""
    config = SimConfig(latency=2.0, seed=1, typical_latency=typical, create_rpm=0)
    async with in_process(config) as (client, app, _clock):
        for model in ("flux-schnell", "flux-2-flex") * 20:
            path = f"/models/black-forest-labs/{model}/predictions"
            assert (await client.post(path, json={"input": {"prompt": "x"}})).status_code == 201
        store = app.store
        means = {
            model: sum(p.done - p.created for p in store.order if p.model.endswith(model)) / 20
            for model in ("flux-schnell", "flux-2-flex")
        }
    expected = (
        {"flux-schnell": 1.0, "flux-2-flex": 23.0} if typical else {"flux-schnell": 2, "flux-2-flex": 2}
    )
    for model, mean in means.items():
        assert mean == pytest.approx(expected[model], rel=0.35), (model, mean)
