"""Data-driven: every manifest in tests/cases/invalid/ fails with the issue its first line expects."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flux_batch import load
from flux_batch.errors import EXIT_INVALID, ManifestError
from flux_batch.jobs.expand import expand
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


def rendered(tmp_path: Path, text: str) -> list[str]:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load(manifest)
    return [line.replace(f"{manifest}:", "m.yaml:") for line in info.value.render_all().splitlines()]


def test_every_unknown_input_of_a_job_is_reported(tmp_path: Path) -> None:
    lines = rendered(
        tmp_path,
        """\
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-pro
            prompt: a cat
            input: {num_outputs: 2, foo: 1, bar: 2}
        """,
    )
    assert [line.split(": ")[1] for line in lines] == [
        "stages[0].input.num_outputs",
        "stages[0].input.foo",
        "stages[0].input.bar",
    ]
    assert all("black-forest-labs/flux-pro has no input" in line for line in lines)


def test_an_unknown_key_and_the_job_checks_are_reported_in_one_pass(tmp_path: Path) -> None:
    # the README's example: it took two rounds of validate
    lines = rendered(
        tmp_path,
        """\
        version: 1
        name: cakes
        stages:
          - id: cake
            model: black-forest-labs/flux-pro
            promt: "a {flavor} cake the size of a building"
            matrix:
              flavor: [black forest, lemon]
              guidance: [3, 7]
        """,
    )
    assert lines == [
        "m.yaml:6:5: stages[0].promt: unknown key 'promt' (hint: did you mean 'prompt'?)",
        "m.yaml:9:17: stages[0].matrix.guidance: 7 is out of range (allowed 2 to 5) (in 2 jobs, first: "
        "flavor=black forest, guidance=7)",
    ]


def test_a_stage_with_an_error_does_not_hide_the_other_stages_job_errors(tmp_path: Path) -> None:
    lines = rendered(
        tmp_path,
        """\
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-pro
            prompt: "a {colour} cake"
            matrix: {color: [red]}
          - id: b
            model: black-forest-labs/flux-schnell
            prompt: "a cake"
            input: {num_outputs: 9, guidance: 3}
        """,
    )
    errors = [line for line in lines if ": warning: " not in line]
    assert [line.split(": ")[1] for line in errors] == [
        "stages[0].prompt",
        "stages[1].input.num_outputs",
        "stages[1].input.guidance",
    ]
    assert "unknown variable {colour}" in errors[0]


def test_a_typo_that_is_not_a_known_key_stops_at_the_schema(tmp_path: Path) -> None:
    lines = rendered(
        tmp_path,
        """\
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-pro
            prompt: a cake
            matrix: {guidance: [3, 7]}
            xyzzy: 1
            repeat: two
        """,
    )
    assert [line.split(": ")[1] for line in lines] == ["stages[0].xyzzy", "stages[0].repeat"]


def test_identical_requests_through_same_seed_across_and_chains_are_found(tmp_path: Path) -> None:
    lines = rendered(
        tmp_path,
        """\
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-schnell
            prompt: "a cat"
            matrix: {style: [x, y], n: [1, 2]}
            same_seed_across: [style]
          - id: b
            model: black-forest-labs/flux-kontext-pro
            prompt: gold
            input: {input_image: {from: a, where: {style: x}}, seed: 1}
          - id: c
            model: black-forest-labs/flux-kontext-pro
            prompt: gold
            input: {input_image: {from: a, where: {style: x}}, seed: 1}
        """,
    )
    errors = [line for line in lines if ": warning: " not in line]
    assert len(errors) == 2
    assert errors[0].startswith("m.yaml:4:9: stages[0].id: 2 jobs of stage 'a' send exactly the request")
    assert "first: style=y, n=1, the same as style=x, n=1" in errors[0]
    assert errors[1].startswith("m.yaml:13:9: stages[2].id: 2 jobs of stage 'c' send exactly the request")
    assert "of a job of stage 'b'" in errors[1]


def test_stages_that_differ_only_by_their_derived_seeds_are_fine(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nname: t\nstages:\n"
        "  - {id: a, model: black-forest-labs/flux-schnell, prompt: a cat, repeat: 2}\n"
        "  - {id: b, model: black-forest-labs/flux-schnell, prompt: a cat, repeat: 2}\n"
    )
    assert len({job.id for job in expand(load(manifest))}) == 4
