"""Fidelity: the simulator's responses validate against Replicate's OpenAPI schemas.

The schemas come from ``shared/reference/replicate-openapi.yaml`` beside the checkout; OpenAPI 3.0's
``nullable: true`` becomes a JSON Schema ``null`` type, and ``oneOf`` becomes ``anyOf`` (the spec's
``version`` is ``oneOf: [string, enum: [hidden]]``, which "hidden" itself would fail under ``oneOf``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from flux_batch.simulator import FaultSpec, SimConfig
from flux_batch.simulator.testing import in_process

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "replicate-openapi.yaml"
FLUX_PRO = "/models/black-forest-labs/flux-pro/predictions"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {("anyOf" if k == "oneOf" else k): to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"] if "type" in node else out.get("type")
    return out


@functools.lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    return to_json_schema(yaml.safe_load(REFERENCE.read_text(encoding="utf-8")))  # type: ignore[no-any-return]


@functools.cache
def validator_for(pointer: str) -> jsonschema.protocols.Validator:
    root = openapi()
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
        missing = await client.get("/files/nope")
        assert missing.status_code == 404
        check(PROBLEM_404, missing.json())
        for response in (missing, await client.post(FLUX_PRO, json={"input": {"prompt": 1}})):
            problem = response.json()
            assert set(problem) >= {"title", "detail", "status"} and problem["status"] == response.status_code
