"""Data-driven: every manifest in tests/cases/invalid/ fails with the issue its first line expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_batch.errors import EXIT_INVALID, ManifestError
from flux_batch.manifest import load
from flux_batch.manifest.validate import schema_issues
from flux_batch.manifest.yaml_loader import parse_yaml

CASES = Path(__file__).parent / "cases"
INVALID = sorted((CASES / "invalid").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <fragment>'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_reports_located_issue(path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load(path)
    rendered = info.value.render_all()
    assert expected(path) in rendered
    assert info.value.exit_code == EXIT_INVALID
    assert "Traceback" not in rendered


def test_enough_invalid_cases() -> None:
    assert len(INVALID) >= 30


def test_all_errors_reported_at_once() -> None:
    text = b"""version: 1
name: t
api: {create_rmp: 5}
stages:
  - id: a
    model: black-forest-labs/flux-pro
    promt: x
    matrix: {color: red}
"""
    issues = schema_issues(parse_yaml(text, "m.yaml"))
    rendered = [i.render() for i in issues]
    assert rendered[0].startswith("m.yaml:3:7: api.create_rmp: unknown key 'create_rmp'")
    assert any("stages[0].promt" in r for r in rendered)
    assert any(r.startswith("m.yaml:8:21: stages[0].matrix.color") for r in rendered)
    assert [i.line for i in issues] == sorted(i.line for i in issues)


def test_missing_required_keys_are_named() -> None:
    issues = schema_issues(parse_yaml(b"version: 1\n", "m.yaml"))
    messages = {i.message for i in issues}
    assert {"missing required key 'name'", "missing required key 'stages'"} <= messages


def test_per_job_problems_are_grouped_not_repeated(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nname: t\nstages:\n  - id: a\n    model: black-forest-labs/flux-pro\n"
        "    prompt: '{n}'\n    matrix:\n      n: {range: {start: 1, stop: 5000}}\n      guidance: [3, 9]\n"
    )
    with pytest.raises(ManifestError) as info:
        load(manifest)
    lines = info.value.render_all().splitlines()
    assert len(lines) == 1
    assert "9 is out of range (allowed 2 to 5) (in 5000 jobs, first: n=1, guidance=9)" in lines[0]


def test_unknown_model_warns_once_per_stage(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nname: t\nprices: {someone/custom-model: 0.01}\nstages:\n"
        "  - id: a\n    model: someone/custom-model\n    prompt: '{n}'\n    matrix: {n: [1, 2, 3]}\n"
    )
    warnings = load(manifest).warnings
    assert len(warnings) == 1
    assert (
        warnings[0]
        .render()
        .startswith(f"{manifest}:6:12: warning: stages[0].model: someone/custom-model is not")
    )


def test_width_without_custom_is_a_warning_not_an_error() -> None:
    manifest = load(Path(__file__).parents[1] / "pipelines" / "cake-single.yaml")
    assert {w.path for w in manifest.warnings} == {"stages[0].input.width", "stages[0].input.height"}
