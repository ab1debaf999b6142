"""Chaos: SIGKILL the ``run`` process at random moments, resume to completion, and prove that every image
is present with its recorded sha256 and that the simulator (served in its own process, so it survives
the kills) never saw the same prediction created twice. Again under the ambiguous-create fault."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import simulator_process, simulator_stats, start_run

pytestmark = pytest.mark.slow

MANIFEST = """
version: 1
name: crash
seed: 11
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
      subject: [fox, owl, cat, lighthouse, tree, boat]
      style: [ink, oil, pixel art, watercolor]
  - id: edit
    model: black-forest-labs/flux-kontext-pro
    needs: [base]
    prompt: "make the {{subject}} gold"
    input:
      input_image: {{from: base}}
"""


@pytest.fixture(params=[(), ("--fault", "ambiguous_create:0.25")], ids=["plain", "ambiguous-create"])
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    with simulator_process("--latency", "0.4", *request.param) as base:
        yield base


def test_sigkill_at_random_moments_then_resume(served: str, tmp_path: Path) -> None:
    manifest = tmp_path / "crash.yaml"
    manifest.write_text(MANIFEST.format(base_url=served))
    out = tmp_path / "out"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    for _ in range(5):
        proc = start_run(manifest, out)
        time.sleep(rng.uniform(0.6, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = start_run(manifest, out)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()

    with (out / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 48 and {r["status"] for r in rows} == {"succeeded"}
    for row in rows:
        data = (out / row["file_name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == int(row["bytes"])
    assert not list(out.rglob("*.part"))

    stats = simulator_stats(served)
    assert stats["duplicate_predictions"] == 0
    assert stats["predictions_created"] == 48
