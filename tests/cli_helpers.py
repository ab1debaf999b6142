"""Helpers for the CLI's tests: a small manifest, a manifest run once for a module's tests to copy, and
"the real API" (the simulator answering in-process for any host, no socket) with every request recorded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.config import parse_fault

MANIFEST = """\
version: 1
name: {name}
{extra}
stages:
  - id: a
    model: black-forest-labs/flux-schnell
    prompt: "a {{x}}"
    input: {{megapixels: "0.25"}}
    matrix: {{x: [{xs}]}}
"""


def write_manifest(path: Path, *, name: str = "t", extra: str = "", xs: str = "cat, dog, owl, fox") -> Path:
    """A manifest of one flux-schnell stage, a job ($0.003) per value of ``xs``; ``extra`` top-level lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MANIFEST.format(name=name, extra=extra, xs=xs), encoding="utf-8")
    return path


def run_once(factory: pytest.TempPathFactory, name: str, manifest: str) -> Path:
    """``manifest`` written as ``m.yaml`` in a folder of its own and run on the simulator into ``out``
    beside it, once; a module's tests copy the folder (``copy_run``) rather than run it again each."""
    from flux_batch.cli import main

    base = factory.mktemp(name)
    (base / "m.yaml").write_text(manifest, encoding="utf-8")
    assert main(["run", str(base / "m.yaml"), "--out", str(base / "out"), "--quiet"]) == 0
    return base


def copy_run(ran: Path, to: Path) -> Path:
    """A copy of ``run_once``'s folder in ``to``; returns the copy's output folder."""
    shutil.copytree(ran, to, dirs_exist_ok=True)
    return to / "out"


@dataclass
class FakeApi:
    """What ``run`` sent: ``(method, host, authorization header)`` per request, and the app's stats."""

    app: Any
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def hosts(self) -> set[str]:
        return {host for _, host, _ in self.requests}

    @property
    def created(self) -> int:
        return int(self.app.stats()["predictions_created"])


@contextmanager
def fake_api(monkeypatch: pytest.MonkeyPatch, *faults: str) -> Iterator[FakeApi]:
    """Route ``run``'s HTTP client (not the built-in simulator's) to an in-process simulator."""
    app = create_app(SimConfig(latency=0.01, seed=3, faults=tuple(parse_fault(f) for f in faults)))
    api = FakeApi(app)

    async def record(request: httpx.Request) -> None:
        api.requests.append((request.method, request.url.host, request.headers.get("authorization", "")))

    def client(max_in_flight: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), event_hooks={"request": [record]})

    monkeypatch.setattr("flux_batch.api.http_client", client)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test")
    yield api
