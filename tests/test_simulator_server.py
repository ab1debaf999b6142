"""Served over loopback with uvicorn: dropped connections and short bodies reach the client as transport
errors, ``base_urls`` names both mounts, and ``--tls`` serves HTTPS a client can trust (#11.2)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flux_batch.simulator import FaultSpec, SimConfig, create_app
from flux_batch.simulator.server import base_urls, serve_in_thread
from flux_batch.simulator.tls import certificate_names, make_tls

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


def test_tls_serves_https_output_urls_to_a_client_that_trusts_the_authority(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    ca = tls.write_ca(tmp_path / "ca.pem")
    assert ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    with serve_in_thread(create_app(SimConfig(latency=0)), tls=tls) as base:
        assert base.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=base, verify=trusted, headers={"Authorization": "Bearer t"}) as client:
            created = client.post(FLUX_PRO, json={"input": {"prompt": "x"}}).json()
            assert created["output"].startswith(f"{base}/delivery/")
            assert created["urls"]["get"].startswith(f"{base}/v1/predictions/")
            assert client.get(created["output"]).headers["content-type"] == "image/webp"
        with (
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
            httpx.Client() as untrusting,
        ):
            untrusting.get(f"{base}/_simulator/stats")
    assert certificate_names("0.0.0.0") == ("127.0.0.1", "localhost", "::1")
    assert certificate_names("sim.test") == ("127.0.0.1", "localhost", "::1", "sim.test")
    assert base_urls("::1", 8787, "https")["replicate"] == "https://[::1]:8787/v1"


@pytest.mark.slow
def test_simulate_tls_command_writes_the_authority_and_serves_https(tmp_path: Path) -> None:
    """``flux-batch simulate --tls --ca-file PATH``, as docs/simulator.md tells a user to run it."""
    ca = tmp_path / "ca.pem"
    command = [sys.executable, "-m", "flux_batch", "simulate", "--tls", "--port", "0", "--ca-file", str(ca)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(6)]
            base = lines[1].split()[-1]
            assert base.startswith("https://127.0.0.1:") and f"SSL_CERT_FILE={ca}" in lines[5]
            trusted = ssl.create_default_context(cafile=str(ca))
            stats = httpx.get(base.replace("/v1", "/_simulator/stats"), verify=trusted)
            assert stats.status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=30)
