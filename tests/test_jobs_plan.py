"""The plan: counts, costs (price overrides, num_outputs), time at the create rate, samples, done hook."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flux_batch import load
from flux_batch.jobs.expand import expand
from flux_batch.jobs.plan import build_plan, job_cost
from flux_batch.manifest import Manifest
from flux_batch.models import get_model


def write(tmp_path: Path, body: str) -> Manifest:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(body))
    return load(path)


CHAIN = """
version: 1
name: t
max_cost_usd: 0.5
api: {create_rpm: 60}
prices: {black-forest-labs/flux-kontext-pro: 0.1}
stages:
  - id: gen
    model: black-forest-labs/flux-schnell
    prompt: "{n}"
    matrix:
      n: [a, b, c]
      num_outputs: [1, 2]
  - id: edit
    model: black-forest-labs/flux-kontext-pro
    prompt: gold
    input: {input_image: {from: gen}}
"""


def test_counts_costs_and_time(tmp_path: Path) -> None:
    plan = build_plan(write(tmp_path, CHAIN))
    gen, edit = plan.stages
    assert (gen.jobs, gen.images) == (6, 9)
    assert gen.cost_usd == pytest.approx(9 * 0.003)
    assert (edit.jobs, edit.images, edit.price_usd) == (9, 9, 0.1)
    assert edit.cost_usd == pytest.approx(0.9)
    assert plan.jobs == 15 and plan.time_s == pytest.approx(15.0)  # 60 creates per minute
    assert plan.over_budget and plan.cost_complete


def test_job_cost_matches_plan(tmp_path: Path) -> None:
    manifest = write(tmp_path, CHAIN)
    total = sum(job_cost(j, manifest.spec_for(j.stage)) or 0 for j in expand(manifest))
    assert total == pytest.approx(build_plan(manifest).cost_usd)
    assert job_cost(next(expand(manifest)), get_model("someone/unpriced")) is None


def test_unpriced_model_marks_cost_incomplete(tmp_path: Path) -> None:
    plan = build_plan(
        write(
            tmp_path,
            """
        version: 1
        name: t
        stages:
          - id: a
            model: someone/custom
            prompt: x
        """,
        )
    )
    assert plan.stages[0].cost_usd is None and not plan.cost_complete


def test_samples_json_and_done_hook(tmp_path: Path) -> None:
    manifest = write(tmp_path, CHAIN)
    plan = build_plan(manifest, done=lambda stage: {"succeeded": 2} if stage == "gen" else {})
    data = json.loads(json.dumps(plan.to_json()))
    assert data["jobs"] == 15 and data["over_budget"] is True
    assert [s["id"] for s in data["stages"]] == ["gen", "edit"]
    assert data["stages"][0]["done"] == {"succeeded": 2}
    assert len(data["samples"]) == 6
    assert set(data["samples"][0]) >= {"id", "stage", "model", "input", "needs", "vars"}
    assert "done" not in build_plan(manifest).to_json()["stages"][0]
