"""Upstream images in an expansion: each stage's computed once per pass, with every id, seed, slug and
need exactly as before (the reproducibility promise), through chains, ``where``, several outputs, a stage
fed by two sources and ``group_by``."""

from __future__ import annotations

import hashlib
import itertools
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from flux_batch import load
from flux_batch.jobs import Job, ids
from flux_batch.jobs.expand import Upstream, expand, expand_stage
from flux_batch.manifest import Manifest

BFL = "black-forest-labs"
#: gen (2 images each) -> edit (of the ink ones) -> night (of the gold edits) -> pair (each night image
#: beside each of the owl-in-oil images: two sources); poster: every edit of one animal (group_by).
PINNED = f"""\
version: 1
name: pinned
seed: 11
stages:
  - id: gen
    model: {BFL}/flux-schnell
    prompt: "a {{animal}} in {{style}}"
    input: {{num_outputs: 2, num_inference_steps: 2.0}}
    matrix: {{animal: [cat, fox, owl], style: [ink, oil]}}
  - id: edit
    model: {BFL}/flux-kontext-pro
    prompt: "make the {{animal}} {{finish}}"
    input: {{input_image: {{from: gen, where: {{style: ink}}}}}}
    matrix: {{finish: [gold, glass]}}
  - id: night
    model: {BFL}/flux-kontext-pro
    prompt: "the {{animal}} at night"
    input: {{input_image: {{from: edit, where: {{finish: gold}}}}}}
  - id: pair
    model: {BFL}/flux-2-pro
    prompt: "the {{animal}} beside it"
    input:
      input_images:
        - {{from: night}}
        - {{from: gen, where: {{animal: owl, style: oil}}}}
  - id: poster
    model: {BFL}/flux-2-pro
    prompt: "one {{layout}} poster of the {{animal}}s"
    input: {{input_images: {{from: edit, group_by: [animal]}}}}
    matrix: {{layout: [grid, row]}}
"""
#: The sha256 of every job's id, stage, seed, slug, needs and variables, in order, as flux-batch 0.x
#: expanded this manifest before upstream images were kept: a change here changes users' ids.
PINNED_DIGEST = "fff038bdce89cbad0a0e3a67be1fc65549d94fc063877936418e762e35cf8b09"


def write(tmp_path: Path, text: str = PINNED) -> Manifest:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load(path)


def digest(jobs: list[Job]) -> str:
    rows = [[j.id, j.stage, j.seed, j.slug, list(j.needs), j.vars] for j in jobs]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_ids_seeds_and_names_are_pinned(tmp_path: Path) -> None:
    jobs = list(expand(write(tmp_path)))
    assert Counter(j.stage for j in jobs) == {"gen": 6, "edit": 12, "night": 6, "pair": 12, "poster": 6}
    assert digest(jobs) == PINNED_DIGEST


def test_a_stage_alone_expands_as_in_the_whole_stream(tmp_path: Path) -> None:
    manifest = write(tmp_path)
    stream = list(expand(manifest))
    upstream = Upstream(manifest)  # filled on first need, shared by the stages
    for stage in manifest.stages:
        wanted = [j.to_json() for j in stream if j.stage == stage.id]
        assert [j.to_json() for j in expand_stage(manifest, stage)] == wanted
        assert [j.to_json() for j in expand_stage(manifest, stage, upstream)] == wanted


def test_each_job_is_made_once_per_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chain stage used to expand its upstream stages again (night: edit and gen; pair: night,
    edit and gen twice over...): 42 jobs cost 144 ids. Now one each, and one per job when a stage alone
    fills an Upstream (the upstream stages once, whoever asks)."""
    manifest = write(tmp_path)
    made = count_ids(monkeypatch)
    assert len(list(expand(manifest))) == 42
    assert len(made) == 42
    made.clear()
    upstream = Upstream(manifest)
    for stage in reversed(manifest.stages):
        list(expand_stage(manifest, stage, upstream))
    assert len(made) == 42 + 6 + 12 + 6  # the stages taken from (gen, edit, night) once more each


def count_ids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    job_id = ids.job_id
    monkeypatch.setattr(ids, "job_id", lambda *a: made.append(job_id(*a)) or made[-1])
    return made


def test_two_sources_where_and_group_by_take_the_right_images(tmp_path: Path) -> None:
    jobs = list(expand(write(tmp_path)))
    by_id = {j.id: j for j in jobs}
    owl_oil = [j.id for j in jobs if j.stage == "gen" and j.vars == {"animal": "owl", "style": "oil"}]
    nights = [j.id for j in jobs if j.stage == "night"]
    pairs = [j for j in jobs if j.stage == "pair"]
    # each night image (one each) beside each owl-in-oil image (two), the second source varying fastest
    assert [[(r["$upstream"], r["output"]) for r in p.input["input_images"]] for p in pairs] == [
        [(n, 0), (owl_oil[0], i)] for n in nights for i in (0, 1)
    ]
    assert all(by_id[p.needs[0]].stage == "night" for p in pairs)
    for poster in (j for j in jobs if j.stage == "poster"):
        edits = [by_id[r["$upstream"]] for r in poster.input["input_images"]]
        assert len(edits) == 4 and {e.vars["animal"] for e in edits} == {poster.vars["animal"]}
    assert all(by_id[j.needs[0]].vars["style"] == "ink" for j in jobs if j.stage == "edit")


def test_a_stage_alone_is_expanded_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first jobs of a chain stage come before its upstream stages are expanded to their end (the
    plan's samples take three of each stage's)."""
    manifest = write(tmp_path)
    made = count_ids(monkeypatch)
    first = list(itertools.islice(expand_stage(manifest, manifest.stage("night")), 2))
    assert [j.stage for j in first] == ["night", "night"]
    assert len(made) <= 6  # of the 24 jobs of gen, edit and night
