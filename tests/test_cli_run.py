"""The `run` command as a user meets it: what it records in run.json, what it says at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flux_batch.cli import main

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def test_run_json_records_the_absolute_manifest_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PIPELINES)
    out = tmp_path / "out"
    assert main(["run", "quickstart.yaml", "--simulator", "--out", str(out), "--quiet"]) == 0
    recorded = json.loads((out / "run.json").read_text())["manifest"]["path"]
    assert recorded == str(PIPELINES / "quickstart.yaml")


def test_a_simulator_run_says_nothing_was_billed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(PIPELINES / "quickstart.yaml"), "--simulator", "--out", str(tmp_path)]) == 0
    this_run, folder = capsys.readouterr().err.strip().splitlines()[-2:]
    assert this_run.startswith("flux-batch: finished in ")
    assert this_run.endswith("this run: 12 succeeded, $0.04 at API prices (simulator: nothing billed)")
    assert "at API prices (simulator: nothing billed) spent there in all" in folder


PINNED = """\
version: 1
name: pinned
stages:
  - id: a
    model: black-forest-labs/flux-schnell:c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e
    prompt: "a {x}"
    matrix: {x: [cat, dog]}
"""


def test_a_manifest_pinning_a_real_version_runs_on_the_simulator(tmp_path: Path) -> None:
    """A real version id (flux-schnell's of June 2025) that the simulator cannot know: the runner names
    it as ``owner/name:<id>``, which the API takes and the simulator learns. It was sent bare, which the
    simulator refused (422 "Invalid version or not permitted"), as the API does an id it does not have."""
    (tmp_path / "m.yaml").write_text(PINNED, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "m.yaml"), "--simulator", "--out", str(out), "--quiet"]) == 0
    text = (out / "manifest.csv").read_text(encoding="utf-8")
    assert text.count(",succeeded,") == 2, text
