"""Output folder traps (#10.9): a relative output is the manifest's, wherever it is run from; another
manifest does not silently take over a folder (and its rows out of the CSV files)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_helpers import write_manifest

from flux_batch.cli import main


def write(path: Path, name: str = "t", extra: str = "", xs: str = "cat, dog") -> Path:
    return write_manifest(path, name=name, extra=extra, xs=xs)


def stages_in_csv(out: Path) -> list[str]:
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        return [row["prompt"] for row in csv.DictReader(f)]


def test_a_relative_output_is_the_manifests_wherever_it_is_run_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "project" / "m.yaml", extra="output: results")
    for cwd in (tmp_path, tmp_path / "project"):  # the second run resumes the first one's folder
        monkeypatch.chdir(cwd)
        assert main(["run", str(manifest.relative_to(cwd)), "--simulator", "-q"]) == 0
    assert not (tmp_path / "results").exists()
    assert sorted(stages_in_csv(tmp_path / "project" / "results")) == ["a cat", "a dog"]
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "project/m.yaml"]) == 0
    out = capsys.readouterr().out
    assert "-> project/results" in out and "already in project/results for a: succeeded 2" in out


def test_a_folder_left_where_a_relative_output_used_to_go_is_pointed_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "project" / "m.yaml")
    monkeypatch.chdir(tmp_path)
    # what running `flux-batch run project/m.yaml` from tmp_path made before: ./out/t
    assert main(["run", "project/m.yaml", "--simulator", "--out", "out/t", "-q"]) == 0
    assert main(["run", "project/m.yaml", "--simulator"]) == 2
    err = capsys.readouterr().err
    assert "out/t holds an earlier run of this manifest, but its output folder is now project/out/t" in err
    assert "resume it with --out out/t" in err
    assert not (tmp_path / "project" / "out").exists()
    assert manifest.exists()


def test_another_manifest_does_not_take_over_a_folder_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "one-folder"
    cats = write(tmp_path / "cats.yaml", name="cats", xs="cat, lion")
    dogs = write(tmp_path / "dogs.yaml", name="dogs", xs="dog, wolf")
    assert main(["run", str(cats), "--simulator", "--out", str(out), "-q"]) == 0
    assert main(["plan", str(dogs), "--out", str(out)]) == 0
    assert f"note: {out} holds the run of another manifest, 'cats'" in capsys.readouterr().err
    assert main(["run", str(dogs), "--simulator", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds the run of another manifest, 'cats' ({cats})" in err
    assert "add --switch-manifest" in err
    assert sorted(stages_in_csv(out)) == ["a cat", "a lion"]
    # the same manifest, edited, is welcome
    write(tmp_path / "cats.yaml", name="cats", xs="cat, lion, lynx")
    assert main(["run", str(cats), "--simulator", "--out", str(out), "-q"]) == 0
    assert main(["run", str(dogs), "--simulator", "--out", str(out), "-q", "--switch-manifest"]) == 0
    assert sorted(stages_in_csv(out)) == ["a dog", "a wolf"]
    assert main(["run", str(cats), "--simulator", "--out", str(out)]) == 2  # the folder is the dogs' now
    assert "another manifest, 'dogs'" in capsys.readouterr().err
