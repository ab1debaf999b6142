"""Every example under pipelines/ validates and plans, with the sizes its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_batch import load
from flux_batch.jobs.expand import count_jobs, expand
from flux_batch.jobs.plan import build_plan

PIPELINES = sorted((Path(__file__).parents[1] / "pipelines").glob("*.yaml"))
SEED_REQUEST = {
    "steps": 25,
    "width": 1024,
    "height": 1024,
    "prompt": "The world's largest black forest cake, the size of a building, "
    "surrounded by trees of the black forest",
    "guidance": 3,
    "interval": 2,
    "aspect_ratio": "1:1",
    "output_format": "webp",
    "output_quality": 80,
    "safety_tolerance": 2,
    "prompt_upsampling": False,
}


@pytest.mark.parametrize("path", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_pipeline_validates_and_plans(path: Path) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/manifest.schema.json\n")
    manifest = load(path)
    plan = build_plan(manifest)
    assert plan.jobs == sum(count_jobs(manifest).values()) > 0
    assert plan.cost_complete and plan.cost_usd < 5


def test_expected_sizes() -> None:
    sizes = {p.stem: sum(count_jobs(load(p)).values()) for p in PIPELINES}
    assert sizes == {
        "cake": 12,
        "cake-single": 1,
        "chain": 24,
        "dataset": 60,
        "models": 15,
        "quickstart": 12,
        "ultra-raw": 6,
    }
    assert set(sizes) == {"cake", "cake-single", "chain", "dataset", "models", "quickstart", "ultra-raw"}


def test_cake_single_is_exactly_the_seed_request() -> None:
    (job,) = expand(load(Path(__file__).parents[1] / "pipelines" / "cake-single.yaml"))
    assert job.model == "black-forest-labs/flux-pro"
    assert {k: v for k, v in job.input.items() if k != "seed"} == SEED_REQUEST
    assert isinstance(job.seed, int)


def test_cake_sweep_surrounds_the_seed_request() -> None:
    jobs = list(expand(load(Path(__file__).parents[1] / "pipelines" / "cake.yaml")))
    assert {j.input["guidance"] for j in jobs} == {2, 3, 4, 5}
    assert {j.input["aspect_ratio"] for j in jobs} == {"1:1", "16:9", "2:3"}
    assert len({j.seed for j in jobs}) == 1
    assert all(j.input["steps"] == 25 and j.input["interval"] == 2 for j in jobs)


def test_models_sweeps_four_models_and_feeds_each_subject_to_input_images() -> None:
    jobs = list(expand(load(Path(__file__).parents[1] / "pipelines" / "models.yaml")))
    compare = [j for j in jobs if j.stage == "compare"]
    assert len({j.model for j in compare}) == 4
    assert {j.model for j in compare if "guidance" in j.input} == {"black-forest-labs/flux-2-flex"}
    blends = [j for j in jobs if j.stage == "blend"]
    assert len(blends) == 3 and all(len(j.input["input_images"]) == 4 for j in blends)
