"""Expansion: deterministic ids, seeds from sweep values (never position), chains, files, streaming."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import textwrap
from pathlib import Path

import pytest

from flux_batch import load
from flux_batch.errors import ManifestError
from flux_batch.jobs import FILE_KEY, UPSTREAM_KEY, ids
from flux_batch.jobs.expand import count_jobs, expand
from flux_batch.manifest import Manifest
from flux_batch.manifest.sweep import Sweep, axis

DATA = Path(__file__).parent / "cases" / "data"


def write(tmp_path: Path, body: str, name: str = "m.yaml") -> Manifest:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return load(path)


BASE = """
version: 1
name: t
seed: 42
stages:
  - id: base
    model: black-forest-labs/flux-pro
    prompt: "a {color} cake"
    matrix:
      color: [red, blue]
      guidance: [2, 3]
"""


def test_jobs_have_seed_in_input_and_stable_ids(tmp_path: Path) -> None:
    jobs = list(expand(write(tmp_path, BASE)))
    assert len(jobs) == 4
    first = jobs[0]
    assert first.input == {"guidance": 2, "prompt": "a red cake", "seed": first.seed}
    assert first.seed == ids.derive_seed(42, "base", {"color": "red", "guidance": 2})
    assert first.id == ids.job_id("black-forest-labs/flux-pro", None, first.input)
    assert first.vars == {"color": "red", "guidance": 2}
    assert [j.id for j in expand(write(tmp_path, BASE))] == [j.id for j in jobs]
    assert len({j.id for j in jobs}) == 4


def test_adding_axis_value_or_stage_keeps_existing_ids(tmp_path: Path) -> None:
    before = {j.id: j.seed for j in expand(write(tmp_path, BASE))}
    grown = (
        BASE.replace("[red, blue]", "[green, red, blue]")
        + """
  - id: extra
    model: black-forest-labs/flux-schnell
    prompt: "a pie"
"""
    )
    after = {j.id: j.seed for j in expand(write(tmp_path, grown))}
    assert before.items() <= after.items()
    assert len(after) == 7


def test_repeat_keeps_the_first_image_when_raised(tmp_path: Path) -> None:
    one = [j.id for j in expand(write(tmp_path, BASE))]
    four = list(expand(write(tmp_path, BASE + "    repeat: 4\n")))
    assert len(four) == 16
    assert set(one) <= {j.id for j in four}
    assert len({j.seed for j in four}) == 16


def test_same_seed_across_shares_seeds(tmp_path: Path) -> None:
    jobs = list(expand(write(tmp_path, BASE + "    same_seed_across: [guidance]\n")))
    seeds = {(j.vars["color"], j.vars["guidance"]): j.seed for j in jobs}
    assert seeds["red", 2] == seeds["red", 3] != seeds["blue", 2]


def test_fixed_seed_and_seed_axis(tmp_path: Path) -> None:
    fixed = list(expand(write(tmp_path, BASE + "    input: {seed: 5}\n")))
    assert {j.seed for j in fixed} == {5}
    axis = BASE.replace("guidance: [2, 3]", "seed: [1, 2, 3]")
    assert sorted({j.seed for j in expand(write(tmp_path, axis))}) == [1, 2, 3]


def test_vars_defaults_and_null_inputs(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        vars: {style: noir}
        defaults: {output_format: png, output_quality: 90}
        stages:
          - id: a
            model: black-forest-labs/flux-kontext-pro
            prompt: "{style} cat"
          - id: b
            model: black-forest-labs/flux-pro
            prompt: "{style} dog"
            input: {output_quality: null}
        """,
    )
    a, b = expand(manifest)
    # kontext takes no output_quality: that default is not applied to it
    assert {k: v for k, v in a.input.items() if k != "seed"} == {"output_format": "png", "prompt": "noir cat"}
    assert "output_quality" not in b.input


def test_chain_one_job_per_upstream_image_with_where_and_vars(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        BASE
        + """
  - id: gold
    model: black-forest-labs/flux-kontext-pro
    prompt: "make the {color} cake gold"
    input:
      input_image: {from: base, where: {color: red}}
    matrix:
      finish: [matte, shiny]
""",
    )
    jobs = list(expand(manifest))
    base = {j.id: j for j in jobs if j.stage == "base"}
    gold = [j for j in jobs if j.stage == "gold"]
    assert count_jobs(manifest) == {"base": 4, "gold": 4}
    assert len(gold) == 4
    for job in gold:
        upstream = base[job.needs[0]]
        assert job.input["input_image"] == {UPSTREAM_KEY: upstream.id, "output": 0}
        assert upstream.vars["color"] == "red"
        assert job.prompt == "make the red cake gold"
        assert job.vars == {**upstream.vars, "finish": job.vars["finish"]}
    assert manifest.stage("gold").needs == ("base",)


def test_chain_from_list_output_model_uses_every_image(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        stages:
          - id: s
            model: black-forest-labs/flux-schnell
            prompt: x
            input: {num_outputs: 3}
          - id: e
            model: black-forest-labs/flux-kontext-pro
            prompt: y
            input: {input_image: {from: s}}
        """,
    )
    edits = [j for j in expand(manifest) if j.stage == "e"]
    assert [j.input["input_image"]["output"] for j in edits] == [0, 1, 2]
    assert len({j.seed for j in edits}) == 3
    assert count_jobs(manifest) == {"s": 1, "e": 3}


def test_glob_and_file_inputs_become_hashed_file_refs(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "data")
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        stages:
          - id: edit
            model: black-forest-labs/flux-kontext-pro
            prompt: make it gold
            matrix:
              input_image: {glob: "data/photo-*.png"}
          - id: one
            model: black-forest-labs/flux-kontext-pro
            prompt: make it blue
            input:
              input_image: {file: data/photo-a.png}
        """,
    )
    jobs = list(expand(manifest))
    refs = [j.input["input_image"] for j in jobs]
    assert [r[FILE_KEY] for r in refs] == ["data/photo-a.png", "data/photo-b.png", "data/photo-a.png"]
    assert refs[0]["sha256"] == refs[2]["sha256"] != refs[1]["sha256"]
    assert jobs[0].vars == {"input_image": "data/photo-a.png"}


def test_cases_from_csv_become_variables_and_inputs(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "data")
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-pro
            prompt: "a {subject}"
            cases: {file: data/rows.csv}
        """,
    )
    jobs = list(expand(manifest))
    assert [(j.prompt, j.input["guidance"]) for j in jobs] == [("a cat", 2), ("a dog", 3.5)]


def test_unknown_model_sends_unused_variables_as_inputs(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        stages:
          - id: a
            model: someone/custom
            prompt: "a {subject}"
            matrix: {subject: [cat], lora_scale: [0.5]}
        """,
    )
    (job,) = expand(manifest)
    assert job.input["lora_scale"] == 0.5 and job.prompt == "a cat"
    assert len(manifest.warnings) == 1


def test_hostile_prompts_cannot_escape_the_output_folder(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        """
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-pro
            prompt: "{p}"
            matrix: {p: ["../../etc/passwd", "/abs/path", "..", "a\\\\b", "x/../../y"]}
        """,
    )
    for job in expand(manifest):
        stem = job.file_stem(1)
        assert "/" not in stem and "\\\\" not in stem and not stem.startswith(".")
        assert Path("out", stem).resolve().parent == Path("out").resolve()


def test_expansion_streams_without_building_the_sweep(tmp_path: Path) -> None:
    small = write(tmp_path, BASE)
    huge = Sweep(tuple(axis(name, list(range(100))) for name in ("color", "guidance", "a", "b")))  # 10^8
    stage = dataclasses.replace(small.stages[0], sweep=huge)
    manifest = dataclasses.replace(small, stages=(stage,))
    assert count_jobs(manifest) == {"base": 100_000_000}
    first_three = list(itertools.islice(expand(manifest), 3))
    assert [j.vars["b"] for j in first_three] == [0, 1, 2]


def test_job_limit_override(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(BASE))
    with pytest.raises(ManifestError, match="more than 3 jobs"):
        load(path, max_jobs=3)
    assert load(path, max_jobs=4).max_jobs == 4
