"""Served over loopback with uvicorn: dropped connections and short bodies reach the client as transport
errors, and ``base_urls`` names both mounts."""

from __future__ import annotations

import httpx
import pytest

from flux_batch.simulator import FaultSpec, SimConfig, create_app
from flux_batch.simulator.server import base_urls, serve_in_thread

FLUX_PRO = "/v1/models/black-forest-labs/flux-pro/predictions"


def test_drops_and_short_bodies_are_transport_errors_over_a_socket() -> None:
    faults = (
        FaultSpec("ambiguous_create", mode="drop", requests=(1, 1)),
        FaultSpec("wrong_length", requests=(1, 1)),
        FaultSpec("reset", on=("get",), requests=(1, 1)),
    )
    app = create_app(SimConfig(latency=0, faults=faults))
    with (
        serve_in_thread(app) as base,
        httpx.Client(base_url=base, headers={"Authorization": "Bearer t"}) as client,
    ):
        with pytest.raises(httpx.TransportError):
            client.post(FLUX_PRO, json={"input": {"prompt": "x"}})
        assert app.stats()["predictions_created"] == 1
        created = client.post(FLUX_PRO, json={"input": {"prompt": "y"}}).json()
        with pytest.raises(httpx.TransportError):
            client.get(f"/v1/predictions/{created['id']}")
        with pytest.raises(httpx.TransportError):
            client.get(created["output"])
        assert client.get(created["output"]).status_code == 200


def test_base_urls() -> None:
    assert base_urls("127.0.0.1", 8787) == {
        "replicate": "http://127.0.0.1:8787/v1",
        "proxy": "http://127.0.0.1:8787/replicate/v1",
        "stats": "http://127.0.0.1:8787/_simulator/stats",
    }
