"""The hostile API served on loopback: the real transport (sockets, the run's HTTP client, uvicorn) against
answers that trickle, answers that never end, and a file host that 404s; then ``flux-batch run`` itself, in a
subprocess, against it (#9.1, #9.4, #10.8)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import write_manifest
from hostile_api import HostileApi, Scenario

from flux_batch.errors import DownloadError, ProtocolError, TransportError
from flux_batch.runner import client as client_module
from flux_batch.runner import download as download_module
from flux_batch.runner.client import ApiClient
from flux_batch.runner.download import download
from flux_batch.runner.http_client import http_client

pytestmark = pytest.mark.slow


async def created(api: HostileApi, base_url: str) -> str:
    async with http_client(4) as http:
        client = ApiClient(http, base_url, "r8_test")
        return (await client.create("black-forest-labs/flux-schnell", None, {"prompt": "x"}, wait=1)).id


async def test_a_trickled_answer_ends_at_the_overall_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    api = HostileApi(Scenario(get="trickle", trickle_s=0.2))
    monkeypatch.setattr(client_module, "CALL_DEADLINE_S", 2.0, raising=False)
    with api.serve() as base_url:
        pid = await created(api, base_url)
        async with http_client(4) as http:
            client = ApiClient(http, base_url, "r8_test", read_timeout=1.0)  # each byte comes in time
            started = time.monotonic()
            with pytest.raises(TransportError, match="no complete answer within 2 s"):
                await asyncio.wait_for(client.get(pid), 30)  # was: held as long as the server liked
            assert time.monotonic() - started < 10
    assert api.stats.sent_bytes < 30


async def test_a_trickled_download_ends_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = HostileApi(Scenario(files="trickle", trickle_s=0.2))
    monkeypatch.setattr(download_module, "DEFAULT_DEADLINE_S", 2.0, raising=False)
    with api.serve() as base_url:
        pid = await created(api, base_url)
        url = base_url.removesuffix("/v1") + f"/files/{pid}/0.png"
        async with http_client(4) as http:
            with pytest.raises(DownloadError, match="longer than 2 s"):
                await asyncio.wait_for(download(http, url, tmp_path, "images", "x", timeout=1.0), 30)
    assert not list((tmp_path / "images").iterdir())


async def test_a_huge_answer_is_not_read_past_the_cap() -> None:
    api = HostileApi(Scenario(get="huge", huge_bytes=512 * 1024 * 1024))
    with api.serve() as base_url:
        pid = await created(api, base_url)
        async with http_client(4) as http:
            client = ApiClient(http, base_url, "r8_test")
            with pytest.raises(ProtocolError, match="larger than 8 MiB"):
                await asyncio.wait_for(client.get(pid), 60)  # was: read whole (1.5 GiB took 3.6-5 GB)
    assert api.stats.sent_bytes < 128 * 1024 * 1024  # the server stopped when the client hung up


def run_cli(tmp_path: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    api = f'api: {{base_url: "{base_url}", max_in_flight: 4, wait: 5}}'
    manifest = write_manifest(tmp_path / "m.yaml", extra=api)
    env = {**os.environ, "REPLICATE_API_TOKEN": "r8_test"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flux_batch", "run", str(manifest), "--out", str(out), "--quiet"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_run_against_a_file_host_that_404s_each_first_request(tmp_path: Path) -> None:
    api = HostileApi(Scenario(files="404_first", latency=0.2))
    with api.serve() as base_url:
        done = run_cli(tmp_path, base_url)
    assert done.returncode == 0, done.stderr
    assert api.stats.creates == 4  # was: 12 predictions and 0 images
    assert len([p for p in (tmp_path / "out" / "images").rglob("*") if p.is_file()]) == 4


def test_run_with_a_base_url_without_v1_stops_with_a_hint(tmp_path: Path) -> None:
    api = HostileApi(Scenario(latency=0.2))
    with api.serve() as base_url:
        done = run_cli(tmp_path, base_url.removesuffix("/v1"))
    assert done.returncode == 2, done.stderr
    assert "did you mean http://127.0.0.1:" in done.stderr and "/v1?" in done.stderr
    assert "Traceback" not in done.stderr
    assert api.stats.by_route["other"] <= 4  # was: a 404 for every job, and exit 1
