"""`plan` counts what an output folder already holds, as the manifest is now (edits included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flux_batch.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_plan_counts_done_jobs_of_the_edited_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    original = (ROOT / "pipelines" / "quickstart.yaml").read_text()
    manifest = tmp_path / "quickstart.yaml"
    manifest.write_text(original)
    assert main(["plan", str(manifest), "--json", "--out", str(out)]) == 0
    assert "done" not in json.loads(capsys.readouterr().out)["stages"][0]

    assert main(["run", str(manifest), "--simulator", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()

    # one more style: 4 new jobs; one changed aspect ratio value: 6 jobs change, 6 stay done
    edited = original.replace("isometric pixel art]", "isometric pixel art, oil painting]")
    edited = edited.replace('"16:9"]', '"3:2"]')
    assert edited != original
    manifest.write_text(edited)
    assert main(["plan", str(manifest), "--json", "--out", str(out)]) == 0
    stage = json.loads(capsys.readouterr().out)["stages"][0]
    assert stage["jobs"] == 16
    assert stage["done"] == {"succeeded": 6}
