"""``flux-batch refine``: the report's picks become a manifest that validates and runs
(flux_batch.report.refine)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import copy_run, run_once

from flux_batch import load
from flux_batch.cli import main

CHAIN = """\
version: 1
name: explore
seed: 3
api: {simulator: true}
stages:
  - id: gen
    model: black-forest-labs/flux-schnell
    prompt: "a {subject}"
    input: {num_inference_steps: 4, megapixels: "0.25"}
    matrix: {subject: [fox, owl]}
  - id: edit
    model: black-forest-labs/flux-kontext-pro
    prompt: "make the {subject} blue"
    input: {input_image: {from: gen}}
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_once(tmp_path_factory, "explored", CHAIN)


@pytest.fixture
def explored(ran: Path, tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    out = copy_run(ran, tmp_path)
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        return out, list(csv.DictReader(f))


def picks_file(path: Path, rows: list[dict[str, str]]) -> Path:
    picks = [{"job_id": r["job_id"], "file_name": r["file_name"], "stage": r["stage"]} for r in rows]
    path.write_text(json.dumps({"flux_batch_picks": 1, "run": "explore", "picks": picks}), encoding="utf-8")
    return path


def test_picks_on_a_stronger_model_with_more_seeds_validate_and_run(
    explored: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = explored
    gen = [r for r in rows if r["stage"] == "gen"]
    target = tmp_path / "next" / "refine.yaml"
    argv = [
        "refine",
        str(out),
        "--picks",
        str(picks_file(tmp_path / "p.json", gen)),
        "--out-manifest",
        str(target),
    ]
    # a higher resolution than the picks' 0.25 megapixels (and small enough to run six in a quick test)
    argv += ["--model", "black-forest-labs/flux-2-pro", "--set", "resolution=0.5 MP", "--seeds", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "flux-2-pro has no input 'num_inference_steps': left out of 2 pick(s)" in printed
    manifest = load(target)
    stage = manifest.stages[0]
    assert stage.model == "black-forest-labs/flux-2-pro" and len(manifest.stages) == 1
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    cases = doc["stages"][0]["cases"]
    assert [(c["text"], c["seed"]) for c in cases] == [
        (r["prompt"], int(r["seed"]) + k) for r in gen for k in range(3)
    ]  # same prompts; each pick's own seed first, then the next ones
    assert all(c["resolution"] == "0.5 MP" and "megapixels" not in c for c in cases)
    assert main(["run", str(target), "--simulator", "--out", str(tmp_path / "refined"), "--quiet"]) == 0
    with open(tmp_path / "refined" / "manifest.csv", encoding="utf-8", newline="") as f:
        made = list(csv.DictReader(f))
    assert len(made) == 6 and {r["status"] for r in made} == {"succeeded"}
    assert [(r["prompt"], r["seed"]) for r in made] == [(c["text"], str(c["seed"])) for c in cases]


def test_an_edit_pick_keeps_its_model_and_its_upstream_image_as_a_file(
    explored: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    out, rows = explored
    edits = [r for r in rows if r["stage"] == "edit"]
    target = tmp_path / "elsewhere" / "again.yaml"
    assert (
        main(
            [
                "refine",
                str(out),
                "--picks",
                str(picks_file(tmp_path / "p.json", edits)),
                "--out-manifest",
                str(target),
            ]
        )
        == 0
    )
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert len(doc["stages"]) == 2  # one stage per upstream image: image inputs are not case values
    for stage, row in zip(doc["stages"], edits, strict=True):
        image = target.parent / stage["input"]["input_image"]["file"]
        assert image.resolve() == (out / row["input_input_image"]).resolve() and image.is_file()
        assert stage["cases"] == [{"model": row["model"], "text": row["prompt"], "seed": int(row["seed"])}]
    load(target)
    # The same request again: with the same model, input and seed, the job id is the one it had.
    assert main(["run", str(target), "--simulator", "--out", str(tmp_path / "again"), "--quiet"]) == 0
    with open(tmp_path / "again" / "manifest.csv", encoding="utf-8", newline="") as f:
        again = [(r["model"], r["prompt"], r["seed"]) for r in csv.DictReader(f)]
    assert again == [(r["model"], r["prompt"], r["seed"]) for r in edits]


def test_bad_picks_and_a_value_the_model_refuses_write_nothing(
    explored: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, rows = explored
    target = tmp_path / "r.yaml"
    base = ["refine", str(out), "--out-manifest", str(target), "--picks"]
    (tmp_path / "bad.json").write_text('{"picks": [{"file": 1}]}', encoding="utf-8")
    assert main([*base, str(tmp_path / "bad.json")]) == 2
    assert "is not a picks file" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"picks": [{"job_id": "0123456789abcdef"}]}', encoding="utf-8")
    assert main([*base, str(tmp_path / "other.json")]) == 2
    assert "1 pick(s) are not in" in capsys.readouterr().err
    picks = str(picks_file(tmp_path / "p.json", rows[:1]))
    assert main([*base, picks, "--model", "black-forest-labs/flux-2-pro", "--set", "resolution=2"]) == 2
    err = capsys.readouterr().err
    assert f"{target}:" in err and "2 is not one of" in err
    assert not target.exists() and not list(tmp_path.glob(".r.yaml*"))
