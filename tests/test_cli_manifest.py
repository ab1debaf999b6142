"""The validate, plan and models commands, through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flux_batch.cli import main

ROOT = Path(__file__).parents[1]
CAKE = str(ROOT / "pipelines" / "cake.yaml")
CHAIN = str(ROOT / "pipelines" / "chain.yaml")
INVALID = Path(__file__).parent / "cases" / "invalid"


def test_validate_ok_one_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", CAKE, CHAIN]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{CAKE}: ok: cake, 1 stage(s), 12 job(s)", f"{CHAIN}: ok: chain, 2 stage(s), 24 job(s)"]


def test_validate_reports_every_file_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    bad = str(INVALID / "unknown_key.yaml")
    assert main(["validate", CAKE, bad]) == 2
    captured = capsys.readouterr()
    assert "cake, 1 stage(s)" in captured.out
    assert "unknown_key.yaml:7:5: stages[0].promt: unknown key 'promt'" in captured.err
    assert "Traceback" not in captured.err


def test_plan_without_valid_manifest_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(INVALID / "out_of_range.yaml")]) == 2
    assert "7 is out of range" in capsys.readouterr().err
    assert not (Path("out") / "t").exists()


def test_plan_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", CHAIN]) == 0
    out = capsys.readouterr().out
    assert "product  black-forest-labs/flux-pro" in out
    assert "$1.08" in out and "sample jobs:" in out


def test_plan_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", CHAIN]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"] == 24 and data["cost_usd"] == pytest.approx(1.08)
    assert [s["jobs"] for s in data["stages"]] == [8, 16]


def test_plan_jobs_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--jobs", CHAIN]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 24
    assert set(lines[0]) == {"id", "stage", "model", "version", "input", "needs", "vars"}
    upstream = {j["id"] for j in lines if j["stage"] == "product"}
    assert all(j["needs"][0] in upstream for j in lines if j["stage"] == "scene")


def test_plan_max_jobs_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--max-jobs", "10", CHAIN]) == 2
    assert "more than 10 jobs" in capsys.readouterr().err


def test_models_lists_known_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/flux-kontext-pro" in out and "$0.04 per image" in out
    assert "guidance" in out and "[default 3]" in out
    assert main(["models", "--json"]) == 0
    assert "black-forest-labs/flux-schnell" in json.loads(capsys.readouterr().out)
