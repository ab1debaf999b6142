"""Fidelity: both seed pages' requests are accepted at the proxy-style prefix and their response shapes
are reproduced field for field (same keys, same value types, ``urls`` pointing at api.replicate.com).

The pages' examples are the project's fixtures (tests/fixtures/seeds/, each saying where it comes from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flux_batch.simulator import SimConfig
from flux_batch.testing import in_process

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"
PROXY = "http://simulator.local/replicate/v1"


def seed(name: str) -> dict[str, Any]:
    """One seed page's examples: ``request`` (if it has one) and ``response``."""
    data: dict[str, Any] = json.loads((SEEDS / name).read_text(encoding="utf-8"))
    return data


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


def fraction_digits(stamp: str) -> int:
    return len(stamp.rstrip("Z").partition(".")[2])


def numbers_blanked(text: str) -> str:
    """The logs' lines with every number replaced: the same lines in the same order."""
    return re.sub(r"\d+(?:\.\d+)?", "N", text)


def assert_same_shape(ours: dict[str, Any], seed: dict[str, Any]) -> None:
    assert list(ours) == list(seed)
    mine, theirs = shape(ours), shape(seed)
    mine["input"] = theirs["input"] = "object"  # the input is whatever the request sent
    assert mine == theirs
    for key in ("created_at", "started_at", "completed_at"):  # 3 fraction digits, 9 for the run's times
        if key in seed:
            assert fraction_digits(ours[key]) == fraction_digits(seed[key]), (key, ours[key], seed[key])
    assert numbers_blanked(ours["logs"]) == numbers_blanked(seed["logs"])
    pid = ours["id"]
    assert ours["urls"]["get"] == f"https://api.replicate.com/v1/predictions/{pid}"
    assert ours["urls"]["cancel"] == f"https://api.replicate.com/v1/predictions/{pid}/cancel"
    assert ours["urls"]["web"] == f"https://replicate.com/p/{pid}"


async def test_seed_000_create_flux_pro() -> None:
    page = seed("000_create_flux_pro.json")
    request, response = page["request"], page["response"]
    async with in_process(SimConfig(latency=5)) as (client, _app, _clock):
        created = await client.post(f"{PROXY}/models/black-forest-labs/flux-pro/predictions", json=request)
    assert created.status_code == 201
    body = created.json()
    assert_same_shape(body, response)
    assert body["input"] == request["input"] and body["status"] == "starting" and body["version"] == "hidden"
    assert len(body["id"]) == len(response["id"])


async def test_seed_004_get_finished_kontext_max() -> None:
    response = seed("004_get_kontext_max.json")["response"]
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
