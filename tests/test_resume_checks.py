"""Resuming a folder with the very manifest its last run checked trusts that run's job checks (at 100,000
jobs they were most of a resume's start-up), keeps their warnings, and checks again whenever anything
they depend on differs: the manifest's text or files, its job limit, a damaged record."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

import flux_batch
from flux_batch.cli import main
from flux_batch.errors import ManifestError
from flux_batch.jobs import checks
from flux_batch.runner.session import CHECKS_META_KEY
from flux_batch.testing import simulate

BFL = "black-forest-labs"
MANIFEST = textwrap.dedent(
    f"""\
    version: 1
    name: t
    output: out
    stages:
      - id: gen
        model: {BFL}/flux-1.1-pro
        prompt: "a {{subject}}"
        input: {{output_format: png}}
        matrix:
          subject: [cat, dog]
          model: [{BFL}/flux-1.1-pro, {BFL}/flux-2-flex]
          guidance: [3]
    """
)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the manifests whose jobs were checked (every job against its model's schema)."""
    seen: list[str] = []
    real = checks.check_inputs

    def check_inputs(manifest, doc):  # type: ignore[no-untyped-def]
        seen.append(manifest.name)
        return real(manifest, doc)

    monkeypatch.setattr(checks, "check_inputs", check_inputs)
    return seen


def _run(path: Path) -> flux_batch.RunResult:
    return simulate(flux_batch.load(path))  # on a fake clock: no waiting


def _warned(manifest: flux_batch.Manifest) -> list[str]:
    return [w.render() for w in manifest.warnings]


def test_a_resume_of_the_same_manifest_trusts_its_checks_and_keeps_their_warnings(
    tmp_path: Path, counted: list[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    first = flux_batch.load(path)
    assert any("has no input 'guidance'" in w for w in _warned(first))  # a warning of the job checks
    assert simulate(first).counts == {"succeeded": 4}
    assert counted == ["t"]
    again = flux_batch.load(path, resume=True)
    assert counted == ["t"]  # not checked again
    assert _warned(again) == _warned(first)
    assert again.stages == first.stages
    assert flux_batch.load(path, resume=tmp_path / "out").warnings == first.warnings
    assert flux_batch.load(path).warnings == first.warnings  # without resume: always checked
    assert counted == ["t", "t"]


def test_the_cli_resume_trusts_the_checks_and_shows_their_warnings(
    tmp_path: Path, counted: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    assert main(["run", str(path), "--simulator", "--quiet"]) == 0
    assert main(["run", str(path), "--simulator"]) == 0
    assert len(counted) == 1
    assert "has no input 'guidance'" in capsys.readouterr().err  # the kept warning, shown again


def test_whatever_the_checks_depend_on_differs_they_are_done_again(
    tmp_path: Path, counted: list[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    _run(path)
    flux_batch.load(path, resume=True)
    assert len(counted) == 1
    flux_batch.load(path, resume=True, max_jobs=9)  # another job limit
    flux_batch.load(path, resume=tmp_path / "elsewhere")  # another folder (none there)
    (tmp_path / "m2.yaml").write_text(MANIFEST)  # another file, the same text
    flux_batch.load(tmp_path / "m2.yaml", resume=tmp_path / "out")
    path.write_text(MANIFEST.replace("subject: [cat, dog]", "subject: [cat, dog, owl]"))  # edited
    flux_batch.load(path, resume=True)
    assert len(counted) == 5


def test_an_edit_that_breaks_the_manifest_is_refused_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    _run(path)
    path.write_text(MANIFEST.replace("guidance: [3]", "guidance: [300]"))
    with pytest.raises(ManifestError, match="300"):
        flux_batch.load(path, resume=True)


@pytest.mark.parametrize(
    "record",
    [
        "not json",
        json.dumps({"key": "0" * 64, "warnings": []}),
        json.dumps(["a", "list"]),
        "KEEP-KEY",  # the right key, damaged warnings
    ],
)
def test_a_damaged_or_foreign_record_means_checking_again(
    tmp_path: Path, counted: list[str], record: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    _run(path)
    db = sqlite3.connect(tmp_path / "out" / "state.db")
    if record == "KEEP-KEY":
        kept = json.loads(
            db.execute("SELECT value FROM meta WHERE key = ?", (CHECKS_META_KEY,)).fetchone()[0]
        )
        record = json.dumps({"key": kept["key"], "warnings": [{"file": 1, "line": "x"}]})
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (record, CHECKS_META_KEY))
    db.close()
    manifest = flux_batch.load(path, resume=True)
    assert len(counted) == 2 and any("has no input 'guidance'" in w for w in _warned(manifest))


def test_a_damaged_state_does_not_stop_the_load(tmp_path: Path, counted: list[str]) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "state.db").write_bytes(b"not a database at all" * 100)
    assert flux_batch.load(path, resume=True).name == "t"  # the run reports the state's problem
    assert counted == ["t"]
