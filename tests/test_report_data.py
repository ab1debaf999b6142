"""Reading an output folder back: stages, typed inputs, image paths, and folders that are not complete."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from report_fixtures import build_output_folder, columns

from flux_batch.errors import UsageError
from flux_batch.report import data


def test_load_reads_stages_from_run_json(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    assert [s.id for s in run.stages] == ["base", "edit"]
    edit = run.stages[1]
    assert edit.needs == ("base",)
    assert edit.vars == ("subject", "guidance", "style")
    assert edit.product_axes == ("style",)
    assert run.name == "synthetic sweep"
    assert run.summary["create_rate_per_min"] == 587.5


def test_load_gives_one_row_per_csv_row_with_typed_inputs(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    assert len(run.rows) == len(syn.rows) == 9 + 18
    first = run.rows[0]
    assert first.vars == {"subject": "cat", "guidance": "2"}
    assert first.input == {
        "prompt": "a photo of a cat, studio light",
        "seed": syn.rows[0]["seed"],
        "aspect_ratio": "1:1",
        "num_inference_steps": 28,
        "output_format": "png",
        "guidance": 2,
    }
    assert type(first.input["num_inference_steps"]) is int
    half = next(r for r in run.rows if r.vars.get("guidance") == "4.5" and r.stage == "base" and not r.failed)
    assert half.input["guidance"] == 4.5
    assert first.file_name.startswith("images/=base/000/") and first.thumb.startswith(".thumbs/=base/000/")
    assert first.cost_usd == 0.025 and first.width == 96 and first.attempts == 1


def test_failed_and_skipped_rows_keep_their_error_and_have_no_image(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    failed = [r for r in run.rows if r.failed]
    assert {r.status for r in failed} == {"failed", "skipped"}
    base_failure = next(r for r in failed if r.status == "failed")
    assert base_failure.job_id == syn.failed_job
    assert "E005" in base_failure.error
    assert base_failure.file_name == "" and base_failure.thumb == "" and base_failure.cost_usd is None


def test_chain_rows_hold_the_upstream_image_as_an_image_input(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    base = {r.job_id: r for r in run.rows if r.stage == "base"}
    edit = next(r for r in run.rows if r.stage == "edit" and r.status == "succeeded")
    assert edit.image_inputs == {"input_image": base[edit.upstream_job_id].file_name}
    assert edit.input["input_image"] == base[edit.upstream_job_id].file_name
    assert edit.input["safety_tolerance"] == 2


def _write_csv(out: Path, header: list[str], rows: list[dict[str, object]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)


def test_a_sweep_variable_that_collides_with_a_column_is_read_from_its_var_column(tmp_path: Path) -> None:
    header = columns(["var_status", "var_input_raw"], ["raw"])
    row = {
        "job_id": "j1",
        "stage": "s",
        "model": "black-forest-labs/flux-1.1-pro-ultra",
        "status": "succeeded",
    }
    row.update({"prompt": "p", "seed": "7", "var_status": "draft", "var_input_raw": "x", "input_raw": "true"})
    _write_csv(tmp_path, header, [row])
    stage = {"id": "s", "model": row["model"], "vars": ["status", "input_raw"], "product_axes": ["status"]}
    (tmp_path / "run.json").write_text(json.dumps({"stages": [stage]}))
    loaded = data.load(tmp_path).rows[0]
    assert loaded.vars == {"status": "draft", "input_raw": "x"}
    assert loaded.status == "succeeded"
    assert loaded.input == {"prompt": "p", "seed": 7, "raw": True}


def test_local_file_inputs_are_made_relative_to_the_output_folder(tmp_path: Path) -> None:
    header = columns(["photo"], ["input_image"])
    row = {"job_id": "j1", "stage": "s", "model": "black-forest-labs/flux-kontext-pro", "status": "succeeded",
           "prompt": "p", "seed": "1", "photo": "a.jpg", "input_input_image": "photos/a.jpg"}  # fmt: skip
    _write_csv(tmp_path / "work/out", header, [row])
    run_json = {
        "manifest": {"path": str(tmp_path / "work/edit.yaml")},
        "stages": [{"id": "s", "vars": ["photo"]}],
    }
    (tmp_path / "work/out/run.json").write_text(json.dumps(run_json))
    loaded = data.load(tmp_path / "work/out").rows[0]
    assert loaded.image_inputs == {"input_image": "../photos/a.jpg"}


def test_without_run_json_the_csv_alone_describes_the_stages(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    (tmp_path / "out/run.json").unlink()
    run = data.load(tmp_path / "out")
    assert [s.id for s in run.stages] == ["base", "edit"]
    assert run.stages[0].vars == ("subject", "guidance", "style")
    assert run.summary == {}


def test_a_folder_without_manifest_csv_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no manifest\.csv"):
        data.load(tmp_path)


def test_a_corrupt_run_json_is_a_usage_error(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    (tmp_path / "out/run.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"run\.json cannot be read"):
        data.load(tmp_path / "out")


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_manifest_csv_that_is_not_text_is_a_usage_error(tmp_path: Path, where: str) -> None:
    build_output_folder(tmp_path / "out")
    path = tmp_path / "out/manifest.csv"
    text = path.read_bytes()
    path.write_bytes(b"\xff\xfe" + text if where == "header" else text + b"\xff,\x00\n")
    with pytest.raises(UsageError, match=r"manifest\.csv cannot be read .*run the pipeline again"):
        data.load(tmp_path / "out")


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("3", {"type": "number"}, 3),
        ("3.0", {"type": "number"}, 3.0),
        ("2.5", {"type": "number"}, 2.5),
        ("28", {"type": "integer"}, 28),
        ("True", {"type": "boolean"}, True),
        ("false", {"type": "boolean"}, False),
        ("1", {"type": "string"}, "1"),
        ("1:1", {}, "1:1"),
        ("abc", {"type": "integer"}, "abc"),
        ('["a", 1]', {"type": "array"}, ["a", 1]),
    ],
)
def test_coerce_restores_schema_types(text: str, schema: dict[str, object], expected: object) -> None:
    value = data.coerce(text, schema)
    assert value == expected and type(value) is type(expected)


def test_axis_values_sort_numbers_numerically_and_keep_words_in_first_seen_order(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out", subjects=("zebra", "ant", "moth"), guidances=("10", "2", "4.5"))
    rows = data.load(tmp_path / "out").stage_rows("base")
    assert data.axis_values(rows, "subject") == ["zebra", "ant", "moth"]
    assert data.axis_values(rows, "guidance") == ["2", "4.5", "10"]
