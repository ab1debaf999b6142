"""The one-job manifest of a report row: valid YAML, a valid manifest, and the same request again."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import yaml
from report_fixtures import build_output_folder

import flux_batch as manifest  # manifest.load: flux_batch.load
from flux_batch.jobs.expand import expand
from flux_batch.report import data
from flux_batch.report.repro import one_job_manifest


def _load_jobs(folder: Path, text: str) -> list:  # type: ignore[type-arg]
    path = folder / "repro.yaml"
    path.write_text(text, encoding="utf-8")
    return list(expand(manifest.load(path)))


def test_a_generated_job_reproduces_with_the_same_job_id(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    row = run.rows[0]
    text = one_job_manifest(row, run_name=run.name)
    document = yaml.safe_load(text)
    assert document["version"] == 1
    assert [s["model"] for s in document["stages"]] == [row.model]
    assert document["stages"][0]["input"] == dict(row.input)
    [job] = _load_jobs(tmp_path / "out", text)
    assert job.id == row.job_id  # same model, same input, same seed: the same request
    assert job.seed == row.seed


def test_a_chain_job_reproduces_with_its_upstream_image_as_a_local_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_output_folder(out)
    run = data.load(out)
    row = next(r for r in run.rows if r.stage == "edit" and r.status == "succeeded")
    text = one_job_manifest(row)
    assert f'input_image: {{file: "{row.image_inputs["input_image"]}"}}' in text
    [job] = _load_jobs(out, text)
    upstream = out / row.image_inputs["input_image"]
    assert job.input["input_image"]["sha256"] == hashlib.sha256(upstream.read_bytes()).hexdigest()
    assert {k: v for k, v in job.input.items() if k != "input_image"} == {
        k: v for k, v in row.input.items() if k != "input_image"
    }


def test_prompts_that_look_like_yaml_or_templates_survive_exactly(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    row = data.load(tmp_path / "out").rows[0]
    for prompt in ('a {subject} "quoted": yes', "123", "null", "- dash\nnew line", "café ☕ #tag", "{{x}}"):
        tricky = dataclasses.replace(row, input={**row.input, "prompt": prompt})
        text = one_job_manifest(tricky)
        assert yaml.safe_load(text)["stages"][0]["input"]["prompt"] == prompt
        [job] = _load_jobs(tmp_path / "out", text)
        assert job.prompt == prompt


def test_a_url_image_input_stays_a_url(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    row = next(r for r in data.load(tmp_path / "out").rows if r.stage == "edit")
    url = "https://example.com/cat.png"
    remote = dataclasses.replace(
        row, input={**row.input, "input_image": url}, image_inputs={"input_image": url}
    )
    assert yaml.safe_load(one_job_manifest(remote))["stages"][0]["input"]["input_image"] == url
