"""``flux-batch report DIR --rows A --cols B --group C``: any variable (the model too) on any axis of every
stage that has it, one contact sheet per value of the grouping axis, the layout kept for the next reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import copy_run, run_once
from PIL import Image

from flux_batch.cli import main
from flux_batch.report import _sheet_rows, data
from flux_batch.report.grid import Layout, grid_of

MODELS = ["black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", "black-forest-labs/flux-2-flex"]
MANIFEST = f"""\
version: 1
name: layout
api: {{simulator: true}}
stages:
  - id: compare
    prompt: "a {{subject}}, {{style}}"
    matrix:
      subject: [fox, owl]
      style: [ink, oil]
      model: {json.dumps(MODELS)}
    include:
      - {{model: black-forest-labs/flux-2-flex, guidance: 3.5}}
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_once(tmp_path_factory, "layout", MANIFEST)  # twelve 1-megapixel images: once a module


@pytest.fixture
def out(ran: Path, tmp_path: Path) -> Path:
    return copy_run(ran, tmp_path)


def page_stages(out: Path) -> dict[str, dict[str, object]]:
    html = (out / "report.html").read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert found is not None
    return {s["id"]: s for s in json.loads(found.group(1))["stages"]}


def test_the_model_on_rows_and_a_variable_on_columns(out: Path) -> None:
    assert main(["report", str(out), "--rows", "model", "--cols", "style"]) == 0
    stage = page_stages(out)["compare"]
    assert (stage["rows"], stage["cols"], stage["group"]) == ("model", "style", None)
    # guidance is set for flex only: it is not held at a value, which would hide flex's row
    assert stage["fixed"] == {"subject": "fox"}
    assert (out / "grid_=compare.png").is_file() and not list(out.glob("grid_=compare.*.png"))
    main(["run", str(out.parent / "m.yaml"), "--out", str(out), "--quiet"])  # the runner's report keeps it
    assert page_stages(out)["compare"]["rows"] == "model"


def test_a_grouping_axis_draws_a_contact_sheet_per_value(out: Path) -> None:
    assert main(["report", str(out), "--rows", "subject", "--cols", "style", "--group", "model"]) == 0
    stage = page_stages(out)["compare"]
    assert stage["group"] == "model" and stage["sheets"] == [f"grid_=compare.{k}.png" for k in (1, 2, 3)]
    assert not (out / "grid_=compare.png").exists()
    for k in (1, 2, 3):
        with Image.open(out / f"grid_=compare.{k}.png") as sheet:
            assert sheet.width > 256 * 2 and sheet.height > 256 * 2
    folder = data.Folder(out)
    info = folder.stage("compare")
    values = {"subject": ["fox", "owl"], "style": ["ink", "oil"], "model": MODELS, "guidance": ["", "3.5"]}
    spec = grid_of(info, values, Layout("subject", "style", "model"))
    sheets = _sheet_rows(folder, {"compare": spec})
    assert sorted(sheets) == [("compare", 1), ("compare", 2), ("compare", 3)]
    for k, model in enumerate(MODELS, start=1):  # each sheet: its model's 2 x 2 images, not the first model's
        sub, rows = sheets[("compare", k)]
        assert sub.fixed["model"] == model
        assert len(rows) == 4 and {r.model for r in rows} == {model}
    assert main(["report", str(out), "--default-layout"]) == 0  # back to the defaults: one sheet
    assert (out / "grid_=compare.png").is_file() and not list(out.glob("grid_=compare.*.png"))
    assert page_stages(out)["compare"]["group"] is None


def test_a_variable_no_stage_has_is_an_error_with_a_did_you_mean(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(out), "--rows", "modle"]) == 2
    assert "did you mean 'model'?" in capsys.readouterr().err
    assert main(["report", str(out), "--rows", "model", "--group", "model"]) == 2


def test_a_stage_without_the_variable_keeps_its_default_axes() -> None:
    info = data.StageInfo("edit", "m", needs=("gen",), vars=("setting", "product"), product_axes=("setting",))
    values = {"setting": ["a", "b"], "product": ["x", "y", "z"]}
    default = grid_of(info, values)
    assert grid_of(info, values, Layout(rows="model", group="model2")) == default
