"""Test helpers that use real processes: the simulator served by ``flux-batch simulate`` in its own process
(so it outlives a killed runner), a ``flux-batch run`` subprocess, and the simulator's stats."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def simulator_process(*flags: str, stderr: IO[bytes] | None = None) -> Iterator[str]:
    """Serve the simulator on a free loopback port; yields its Replicate-style base URL (``.../v1``).
    ``stderr``: a file for what it logs (default: this process's stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flux_batch", "simulate", "--port", "0", "--seed", "3", *flags],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = ""
        while not base:
            line = proc.stdout.readline()
            assert line, "the simulator did not start"
            if "Replicate style:" in line:
                base = line.split("Replicate style:")[1].strip()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_run(
    manifest: Path,
    out: Path,
    *extra: str,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``flux-batch run MANIFEST --out OUT --quiet`` in a subprocess, with a token in its environment
    (``env`` adds to or overrides this process's)."""
    full_env = {**os.environ, "REPLICATE_API_TOKEN": "r8_test", **(env or {})}
    cmd = [sys.executable, "-m", "flux_batch", "run", str(manifest), "--out", str(out), "--quiet", *extra]
    return subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=stdout, stderr=stderr)


def chain_manifest(
    base_url: str, *, name: str, seed: int, subjects: list[str], styles: list[str], metal: str = "gold"
) -> str:
    """A two-stage manifest against ``base_url``: flux-schnell images of every subject in every style, then
    a flux-kontext-pro edit of each; creates paced at 1,200 a minute, 12 in flight, each held 1 s."""
    return f"""
version: 1
name: {name}
seed: {seed}
api:
  base_url: {base_url}
  create_rpm: 1200
  max_in_flight: 12
  wait: 1
stages:
  - id: base
    model: black-forest-labs/flux-schnell
    prompt: "a {{subject}}, {{style}}"
    input:
      megapixels: "0.25"
    matrix:
      subject: [{", ".join(subjects)}]
      style: [{", ".join(styles)}]
  - id: edit
    model: black-forest-labs/flux-kontext-pro
    needs: [base]
    prompt: "make the {{subject}} {metal}"
    input:
      input_image: {{from: base}}
"""


def simulator_stats(base_url: str) -> dict[str, Any]:
    """``GET /_simulator/stats`` of the simulator serving ``base_url``."""
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(root + "/_simulator/stats") as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def simulator_predictions(base_url: str) -> list[dict[str, Any]]:
    """Every prediction the simulator serving ``base_url`` holds, newest first (all pages of the list)."""
    url: str | None = base_url + "/predictions"
    found: list[dict[str, Any]] = []
    while url:
        page = _page(url)
        found += page["results"]
        url = page["next"]
    return found


def _page(url: str, tries: int = 20) -> dict[str, Any]:
    """One page of the list. A fault the simulator was started with (``html_5xx`` strikes any request)
    may answer it with a 5xx: asked again, as the truth a test checks against must not be left to chance."""
    request = urllib.request.Request(url, headers={"Authorization": "Bearer r8_test"})
    for _ in range(tries - 1):
        try:
            return _json(request)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
    return _json(request)


def _json(request: urllib.request.Request) -> dict[str, Any]:
    with urllib.request.urlopen(request) as response:
        data: dict[str, Any] = json.load(response)
    return data
