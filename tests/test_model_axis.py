"""The model as a sweep axis, list-of-image inputs and model names (manifest -> jobs -> plan)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flux_batch import load
from flux_batch.errors import ManifestError
from flux_batch.jobs.expand import expand
from flux_batch.jobs.plan import build_plan

BFL = "black-forest-labs"


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nname: t\nseed: 1\n" + text, encoding="utf-8")
    return load(path)


def _errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, text)
    return caught.value.render_all()


SWEEP = f"""\
stages:
  - id: gen
    prompt: "a {{animal}}"
    matrix:
      model: [{BFL}/flux-1.1-pro, {BFL}/flux-2-pro, {BFL}/flux-2-flex]
      animal: [cat, fox]
      guidance: [3]
    same_seed_across: [model]
"""


#: An upstream stage of two flux-schnell images, a cat and a fox.
GEN = f"""\
stages:
  - id: gen
    model: {BFL}/flux-schnell
    prompt: "a {{animal}}"
    matrix: {{animal: [cat, fox]}}
"""


def test_each_job_gets_the_model_of_its_values(tmp_path: Path) -> None:
    manifest = _load(tmp_path, SWEEP)
    jobs = list(expand(manifest))
    assert [j.model for j in jobs] == [f"{BFL}/flux-1.1-pro"] * 2 + [f"{BFL}/flux-2-pro"] * 2 + [
        f"{BFL}/flux-2-flex"
    ] * 2
    assert len({j.id for j in jobs}) == 6
    assert "model" not in jobs[0].input and jobs[0].vars["model"] == f"{BFL}/flux-1.1-pro"
    # same_seed_across: [model] compares the models on the same seed
    assert jobs[0].seed == jobs[2].seed == jobs[4].seed


def test_an_input_a_model_lacks_is_left_out_of_its_jobs_with_a_warning(tmp_path: Path) -> None:
    manifest = _load(tmp_path, SWEEP)
    by_model = {j.model: j.input for j in expand(manifest)}
    assert by_model[f"{BFL}/flux-2-flex"]["guidance"] == 3
    assert "guidance" not in by_model[f"{BFL}/flux-1.1-pro"]
    assert "guidance" not in by_model[f"{BFL}/flux-2-pro"]
    warned = [w.render() for w in manifest.warnings]
    left_out = f"{BFL}/flux-2-pro has no input 'guidance': it is left out of 2 job(s) of that model"
    assert any(left_out in w for w in warned)
    assert all("m.yaml:10:" in w for w in warned if "guidance" in w)  # at the guidance axis


def test_each_job_is_checked_against_its_own_model(tmp_path: Path) -> None:
    text = SWEEP.replace("guidance: [3]", "safety_tolerance: [6]")
    errors = _errors(tmp_path, text)
    # flux-1.1-pro allows 6, the FLUX.2 models stop at 5: only their jobs are wrong
    assert f"6 is out of range (allowed 1 to 5) (in 4 jobs, first: model={BFL}/flux-2-pro" in errors
    assert "flux-1.1-pro" not in errors.split("(in 4 jobs")[0]


def test_an_input_no_model_of_the_stage_takes_is_an_error(tmp_path: Path) -> None:
    errors = _errors(tmp_path, SWEEP + "    input: {guidanse: 3}\n")
    assert "has no input 'guidanse' (in 2 jobs" in errors and "did you mean 'guidance'?" in errors


def test_inputs_set_per_model_with_include_and_cases(tmp_path: Path) -> None:
    text = f"""\
stages:
  - id: gen
    prompt: "a cat"
    cases:
      - {{model: {BFL}/flux-2-flex, steps: 20}}
      - {{model: {BFL}/flux-schnell, num_inference_steps: 2}}
    include:
      - {{model: {BFL}/flux-2-flex, guidance: 2.5}}
"""
    manifest = _load(tmp_path, text)
    assert not manifest.warnings  # each input goes only to the jobs of a model that takes it
    jobs = {j.model: j.input for j in expand(manifest)}
    assert jobs[f"{BFL}/flux-2-flex"]["steps"] == 20 and jobs[f"{BFL}/flux-2-flex"]["guidance"] == 2.5
    assert jobs[f"{BFL}/flux-schnell"]["num_inference_steps"] == 2
    assert "guidance" not in jobs[f"{BFL}/flux-schnell"]


def test_a_later_stage_of_a_chain_sweeps_the_model(tmp_path: Path) -> None:
    text = (
        GEN
        + f"""\
  - id: edit
    prompt: "make the {{animal}} gold"
    input: {{input_image: {{from: gen}}}}
    matrix:
      model: [{BFL}/flux-kontext-pro, {BFL}/flux-kontext-max]
"""
    )
    manifest = _load(tmp_path, text)
    edits = [j for j in expand(manifest) if j.stage == "edit"]
    kontexts = [f"{BFL}/flux-kontext-pro", f"{BFL}/flux-kontext-max"]
    assert sorted(j.model for j in edits) == sorted(kontexts * 2)
    assert all(j.needs and j.input["input_image"]["$upstream"] in j.needs for j in edits)
    plan = build_plan(manifest)
    shares = {m.model: m for m in plan.stages[1].models}
    assert shares[f"{BFL}/flux-kontext-max"].cost_usd == pytest.approx(0.16)
    assert shares[f"{BFL}/flux-kontext-pro"].jobs == 2
    assert plan.stages[1].cost_usd == pytest.approx(0.24)


def test_a_model_name_one_typo_from_a_known_one_is_an_error(tmp_path: Path) -> None:
    errors = _errors(tmp_path, f"stages:\n  - id: a\n    model: {BFL}/flux-pr0\n    prompt: x\n")
    assert f"did you mean '{BFL}/flux-pro'?" in errors
    # another size of a known family is another model: a warning, not an error
    manifest = _load(tmp_path, f"stages:\n  - id: a\n    model: {BFL}/flux-2-klein-9b\n    prompt: x\n")
    assert "not a known model: its inputs are not checked" in manifest.warnings[0].render()


def test_a_stage_needs_a_model(tmp_path: Path) -> None:
    assert "the stage has no model" in _errors(tmp_path, "stages:\n  - id: a\n    prompt: x\n")


def test_input_images_takes_upstream_images_files_and_globs(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("b.png", "a.png"):
        Image.new("RGB", (8, 8)).save(refs / name)
    text = f"""\
stages:
  - id: gen
    model: {BFL}/flux-schnell
    prompt: "a {{animal}} {{style}}"
    matrix: {{animal: [cat, fox], style: [ink, oil]}}
  - id: poster
    model: {BFL}/flux-2-pro
    prompt: "one poster of the {{animal}}s"
    input:
      input_images:
        - {{file: refs/a.png}}
        - {{from: gen, group_by: [animal]}}
        - {{glob: "refs/*.png"}}
"""
    manifest = _load(tmp_path, text)
    posters = [j for j in expand(manifest) if j.stage == "poster"]
    assert len(posters) == 2  # one per animal, each with both of its styles
    images = posters[0].input["input_images"]
    assert [i.get("$file") for i in images] == ["refs/a.png", None, None, "refs/a.png", "refs/b.png"]
    assert len(posters[0].needs) == 2 and posters[0].vars == {"animal": "cat"}
    cost = build_plan(manifest).stages[1].cost_usd  # $0.015 + 5 inputs x 1 MP + 1 MP out, twice
    assert cost == pytest.approx(2 * 0.015 * 7)


def test_one_upstream_image_per_job_into_a_list_input(tmp_path: Path) -> None:
    text = (
        GEN
        + f"""\
  - id: edit
    model: {BFL}/flux-2-dev
    prompt: "gold"
    input: {{input_images: {{from: gen}}}}
"""
    )
    edits = [j for j in expand(_load(tmp_path, text)) if j.stage == "edit"]
    assert len(edits) == 2 and all(len(j.input["input_images"]) == 1 for j in edits)


def test_group_by_needs_a_list_input_and_the_list_is_limited(tmp_path: Path) -> None:
    text = f"""\
stages:
  - id: gen
    model: {BFL}/flux-schnell
    prompt: "a {{n}}"
    matrix: {{n: {{range: {{start: 1, stop: 5}}}}}}
  - id: edit
    model: {BFL}/flux-kontext-pro
    prompt: "gold"
    input: {{input_image: {{from: gen, group_by: []}}}}
"""
    assert "group_by gives several images, but 'input_image' takes one" in _errors(tmp_path, text)
    errors = _errors(
        tmp_path,
        text.replace("flux-kontext-pro", "flux-2-dev").replace("input_image:", "input_images:"),
    )
    assert "5 images" in errors or "too long" in errors  # flux-2-dev takes at most 4


def test_an_include_entry_missing_a_prompt_variable_is_an_error(tmp_path: Path) -> None:
    # an entry that extends no combination is a job of its own: it used to crash with KeyError
    text = f"""\
stages:
  - id: a
    prompt: "a {{subject}}"
    matrix:
      subject: [fox]
      model: [{BFL}/flux-schnell]
    include:
      - {{model: {BFL}/flux-2-flex, guidance: 3.5}}
"""
    errors = _errors(tmp_path, text)
    assert "has no value for {subject} in the prompt" in errors


MIXED = (
    GEN
    + f"""\
  - id: edit
    prompt: "make it gold"
    input:
      NAME: {{from: genGROUP}}
    matrix:
      model: [{BFL}/flux-kontext-pro, {BFL}/flux-2-pro, {BFL}/flux-2-klein-4b, {BFL}/flux-schnell]
"""
)


@pytest.mark.parametrize("name", ["input_image", "input_images"])
def test_a_model_axis_gives_each_model_the_reference_image_in_its_own_input(
    tmp_path: Path, name: str
) -> None:
    """kontext takes one ``input_image``, flux-2-pro an ``input_images`` list, klein an ``images`` list:
    whichever the stage names, each job gets the image in its own model's input. They used to lose it:
    flux-2-pro and klein jobs ran as text-to-image, with no warning."""
    manifest = _load(tmp_path, MIXED.replace("NAME", name).replace("GROUP", ""))
    edits = {j.model.rpartition("/")[2]: j.input for j in expand(manifest) if j.stage == "edit"}
    upstream = edits["flux-kontext-pro"]["input_image"]
    assert upstream["$upstream"] and not isinstance(upstream, list)
    assert edits["flux-2-pro"]["input_images"] == [upstream]
    assert edits["flux-2-klein-4b"]["images"] == [upstream]
    for model, input in edits.items():
        others = {"input_image", "input_images", "images"} - {models_input(model)}
        assert not others & set(input), (model, input)
    # flux-schnell takes no image: the reference is left out of its jobs, with a warning
    warnings = [w.render() for w in manifest.warnings]
    assert any(f"flux-schnell has no input {name!r}: it is left out of 2 job(s)" in w for w in warnings)
    assert not any("flux-2-pro has no input" in w or "kontext-pro has no input" in w for w in warnings)


def models_input(model: str) -> str | None:
    return {"flux-kontext-pro": "input_image", "flux-2-pro": "input_images", "flux-2-klein-4b": "images"}.get(
        model
    )


def test_several_images_for_a_one_image_model_is_one_precise_error(tmp_path: Path) -> None:
    text = (
        MIXED.replace("NAME", "input_images")
        .replace("GROUP", ", group_by: []")
        .replace("matrix: {animal: [cat, fox]}", "matrix: {animal: [cat, fox, owl]}")
    )
    lines = [line for line in _errors(tmp_path, text).splitlines() if ": warning: " not in line]
    assert len(lines) == 1, lines  # one error, at the input's line (the manifest starts with 3 lines)
    errors = lines[0]
    assert "m.yaml:12:21: stages[1].input.input_images: " in errors
    assert "flux-kontext-pro takes one image ('input_image'), but 'input_images' gives 3" in errors
    assert "placeholder" not in errors and "group_by more variables" in errors
