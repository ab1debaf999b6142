"""Fidelity: the simulator's responses validate against Replicate's OpenAPI schemas.

The schemas are the project's fixture (tests/fixtures/replicate-openapi.yaml, with the description's own
bugs patched by tests/openapi_spec.py); OpenAPI 3.0's ``nullable: true`` becomes a JSON Schema ``null``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
from openapi_spec import json_schema

from flux_batch.simulator import FaultSpec, SimConfig
from flux_batch.testing import in_process

FLUX_PRO = "/models/black-forest-labs/flux-pro/predictions"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@functools.cache
def validator_for(pointer: str) -> jsonschema.protocols.Validator:
    root = json_schema()
    schema = {"$ref": f"#/{pointer}", "components": root["components"], "paths": root["paths"]}
    cls = jsonschema.Draft202012Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check(pointer: str, body: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator_for(pointer).iter_errors(body)]
    assert not errors, errors


PREDICTION = "components/schemas/schemas_prediction_response"
LIST = "paths/~1predictions/get/responses/200/content/application~1json/schema"
FILE = "components/schemas/schemas_file_response"
PROBLEM_404 = "paths/~1files~1{file_id}/get/responses/404/content/application~1problem+json/schema"
FILES = "paths/~1files/get/responses/200/content/application~1json/schema"
MODEL = "components/schemas/schemas_model_response"
VERSIONS = "components/schemas/schemas_paginated_version_response"
VERSION = "components/schemas/schemas_version_response"


def check_prediction(body: dict[str, Any]) -> None:
    check(PREDICTION, body)
    for key in ("created_at", "started_at", "completed_at", "deadline"):
        if key in body:
            assert ISO_Z.match(body[key]), (key, body[key])


def test_the_schemas_are_not_vacuous() -> None:
    assert list(validator_for(PREDICTION).iter_errors({"id": "x", "status": "done"}))
    assert list(validator_for(PREDICTION).iter_errors({"version": None}))


async def test_every_prediction_state_matches_the_schema() -> None:
    faults = (FaultSpec("content_filter", requests=(2, 2)),)
    async with in_process(SimConfig(latency=10, retention=100, faults=faults)) as (client, _app, clock):
        ids = [
            (await client.post(FLUX_PRO, json={"input": {"prompt": f"p{i}"}})).json()["id"] for i in range(4)
        ]
        await client.post(f"/predictions/{ids[2]}/cancel")
        deadline = await client.post(
            FLUX_PRO, json={"input": {"prompt": "d"}}, headers={"Cancel-After": "5s"}
        )
        for advance in (0, 5, 6, 30, 200):
            clock.advance(advance)
            for pid in [*ids, deadline.json()["id"]]:
                check_prediction((await client.get(f"/predictions/{pid}")).json())
        statuses = {(await client.get(f"/predictions/{pid}")).json()["status"] for pid in ids}
        assert statuses == {"succeeded", "failed", "canceled"}


async def test_proxy_style_and_list_pages_match_the_schema() -> None:
    async with in_process(SimConfig(latency=0, create_rpm=0)) as (client, _app, _clock):
        for i in range(105):
            proxy = f"http://simulator.local/replicate/v1{FLUX_PRO}"
            body = (await client.post(proxy, json={"input": {"prompt": str(i)}})).json()
        assert body["message"] and body["urls"]["get"].startswith("https://api.replicate.com/v1/")
        check_prediction(body)
        page = (await client.get("/predictions")).json()
        check(LIST, page)
        check("components/schemas/schemas_paginated_prediction_response", page)
        last = (await client.get(page["next"])).json()
        check(LIST, last)
        assert len(page["results"]) == 100 and len(last["results"]) == 5


async def test_file_objects_and_problems_match_the_schema() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        uploaded = await client.post(
            "/files", files={"content": ("a.bin", b"abc", "application/octet-stream")}
        )
        check(FILE, uploaded.json())
        check(FILE, (await client.get(f"/files/{uploaded.json()['id']}")).json())
        check(FILES, (await client.get("/files")).json())
        missing = await client.get("/files/nope")
        assert missing.status_code == 404
        check(PROBLEM_404, missing.json())
        for response in (missing, await client.post(FLUX_PRO, json={"input": {"prompt": 1}})):
            problem = response.json()
            assert set(problem) >= {"title", "detail", "status"} and problem["status"] == response.status_code


async def test_model_and_version_objects_match_the_schema() -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        model = (await client.get("/models/black-forest-labs/flux-schnell")).json()
        check(MODEL, model)
        versions = (await client.get("/models/black-forest-labs/flux-schnell/versions")).json()
        check(VERSIONS, versions)
        version_id = model["latest_version"]["id"]
        version = await client.get(f"/models/black-forest-labs/flux-schnell/versions/{version_id}")
        check(VERSION, version.json())
        assert versions["results"] == [version.json()] == [model["latest_version"]]
