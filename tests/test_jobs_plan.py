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
from flux_batch.models.catalog import get_model


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
    # 60 creates a minute: 6 s of creates + a 1-s flux-schnell prediction, 9 s + a 6-s kontext-pro one
    assert plan.jobs == 15 and plan.time_s == pytest.approx(7.0 + 15.0)
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


SLOW = """
version: 1
name: t
api: {{create_rpm: 600, max_in_flight: {cap}}}
stages:
  - id: a
    prompt: "{{n}}"
    matrix:
      n: {{range: {{start: 1, stop: 100}}}}  # inclusive: 100 values
      model: {models}
"""


def test_time_counts_the_predictions_and_the_in_flight_cap(tmp_path: Path) -> None:
    """100 flux-2-max jobs (30 s each) at 10 creates a second: the creates take 10 s, but at most 10 in
    flight finish one every 3 s (Little's law): 300 s, plus the last prediction. The old plan said 10 s."""
    plan = build_plan(write(tmp_path, SLOW.format(cap=10, models="[black-forest-labs/flux-2-max]")))
    assert plan.stages[0].time_s == pytest.approx(100 * 30 / 10 + 30)
    roomy = build_plan(write(tmp_path, SLOW.format(cap=500, models="[black-forest-labs/flux-2-max]")))
    assert roomy.stages[0].time_s == pytest.approx(100 / 10 + 30)  # the rate binds: 10 s + one prediction
    assert roomy.to_json()["stages"][0]["models"][0]["predict_s"] == 30


def test_a_model_axis_shares_the_stage_s_throughput(tmp_path: Path) -> None:
    models = "[black-forest-labs/flux-schnell, black-forest-labs/flux-2-flex]"  # 1 s and 23 s
    plan = build_plan(write(tmp_path, SLOW.format(cap=20, models=models)))
    stage = plan.stages[0]
    schnell, flex = stage.models
    throughput = 20 / 12  # 200 jobs, a mean hold of 12 s, at most 20 in flight: 1.67 jobs a second
    assert stage.time_s == pytest.approx(200 / throughput + 23)  # the last flex prediction ends last
    assert schnell.time_s == pytest.approx(100 / throughput + 1)
    assert flex.time_s == pytest.approx(100 / throughput + 23)
    assert plan.todo_time_s == pytest.approx(stage.time_s)


def test_an_unknown_model_is_counted_at_the_default_and_said_so(tmp_path: Path) -> None:
    plan = build_plan(write(tmp_path, SLOW.format(cap=500, models="[someone/lora]")))
    model = plan.stages[0].models[0]
    assert (model.predict_s, model.predict_known) == (10.0, False)
