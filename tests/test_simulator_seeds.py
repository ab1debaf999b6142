"""Fidelity: both seed pages' requests are accepted at the proxy-style prefix and their response shapes
are reproduced field for field (same keys, same value types, ``urls`` pointing at api.replicate.com)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flux_batch.simulator import SimConfig
from flux_batch.simulator.testing import in_process

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "seeds"
PROXY = "http://simulator.local/replicate/v1"


def examples(name: str) -> list[Any]:
    """Every JSON object following an ``Example`` line in a seed page, in order."""
    text = (SEEDS / name).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found = []
    for part in text.split("Example\n")[1:]:
        start = part.find("{")
        if start != -1 and not part[:start].strip():
            found.append(decoder.raw_decode(part[start:])[0])
    return found


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and kinds, numbers as one kind."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else "string"


def assert_same_shape(ours: dict[str, Any], seed: dict[str, Any]) -> None:
    assert list(ours) == list(seed)
    mine, theirs = shape(ours), shape(seed)
    mine["input"] = theirs["input"] = "object"  # the input is whatever the request sent
    assert mine == theirs
    pid = ours["id"]
    assert ours["urls"]["get"] == f"https://api.replicate.com/v1/predictions/{pid}"
    assert ours["urls"]["cancel"] == f"https://api.replicate.com/v1/predictions/{pid}/cancel"
    assert ours["urls"]["web"] == f"https://replicate.com/p/{pid}"


async def test_seed_000_create_flux_pro() -> None:
    request, response = examples("000_75c6f6d6094ce5b5.txt")
    async with in_process(SimConfig(latency=5)) as (client, _app, _clock):
        created = await client.post(f"{PROXY}/models/black-forest-labs/flux-pro/predictions", json=request)
    assert created.status_code == 201
    body = created.json()
    assert_same_shape(body, response)
    assert body["input"] == request["input"] and body["status"] == "starting" and body["version"] == "hidden"
    assert len(body["id"]) == len(response["id"])


async def test_seed_004_get_finished_kontext_max() -> None:
    (response,) = examples("004_5231722b0fee9109.txt")
    async with in_process(SimConfig(latency=5)) as (client, _app, clock):
        path = f"{PROXY}/models/{response['model']}/predictions"
        pid = (await client.post(path, json={"input": response["input"]})).json()["id"]
        clock.advance(60)
        got = await client.get(f"{PROXY}/predictions/{pid}")
    assert got.status_code == 200
    body = got.json()
    assert_same_shape(body, response)
    assert (
        body["status"] == "succeeded"
        and body["output"].endswith(".png")
        and body["logs"].startswith("Using seed: ")
    )
    assert body["metrics"]["image_count"] == 1
