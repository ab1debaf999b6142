"""run.json names the manifest by its absolute path, so the report works from any directory."""

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
