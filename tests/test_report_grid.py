"""The X/Y grid: default axes from the product axes, and which rows land in which cell."""

from __future__ import annotations

from pathlib import Path

from report_fixtures import build_output_folder

from flux_batch.report import data
from flux_batch.report.grid import MAX_DEFAULT_COLUMNS, Axis, GridSpec, cells, default_axes, default_grid


def _stage(vars: tuple[str, ...], axes: tuple[str, ...], needs: tuple[str, ...] = ()) -> data.StageInfo:
    return data.StageInfo("s", "m/x", needs=needs, vars=vars, product_axes=axes)


def test_default_axes_are_the_first_two_varying_product_axes() -> None:
    values = {"subject": ["cat", "dog"], "style": ["a"], "guidance": ["2", "3"], "seed_set": ["1", "2"]}
    stage = _stage(("subject", "style", "guidance", "seed_set"), ("style", "subject", "guidance"))
    assert default_axes(stage, values) == ("subject", "guidance")  # style has one value: not an axis


def test_other_varying_variables_fill_in_when_product_axes_run_out() -> None:
    values = {"subject": ["cat", "dog"], "lighting": ["soft", "hard"]}
    assert default_axes(_stage(("subject", "lighting"), ("subject",)), values) == ("subject", "lighting")
    assert default_axes(_stage(("subject", "lighting"), ()), values) == ("subject", "lighting")


def test_a_chain_stage_lays_its_own_axis_across() -> None:
    values = {"subject": ["cat", "dog", "fox"], "style": ["gold", "glass"]}
    stage = _stage(("subject", "style"), ("style",), needs=("base",))
    assert default_axes(stage, values) == ("subject", "style")


def test_a_single_axis_is_columns_unless_it_is_long() -> None:
    short = {"guidance": [str(i) for i in range(MAX_DEFAULT_COLUMNS)]}
    long = {"prompt_line": [str(i) for i in range(MAX_DEFAULT_COLUMNS + 1)]}
    assert default_axes(_stage(("guidance",), ("guidance",)), short) == (None, "guidance")
    assert default_axes(_stage(("prompt_line",), ()), long) == ("prompt_line", None)


def test_a_long_second_axis_swaps_to_rows() -> None:
    values = {"guidance": ["2", "3"], "prompt_line": [str(i) for i in range(40)]}
    assert default_axes(_stage(("guidance", "prompt_line"), ("guidance", "prompt_line")), values) == (
        "prompt_line",
        "guidance",
    )


def test_nothing_varies_means_no_axes() -> None:
    assert default_axes(_stage(("subject",), ("subject",)), {"subject": ["cat"]}) == (None, None)


def test_default_grid_holds_other_variables_at_their_first_value(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    base = default_grid(run.stages[0], run.stage_rows("base"))
    assert base.rows == Axis("subject", ("cat", "dog", "fox"))
    assert base.cols == Axis("guidance", ("2", "3", "4.5"))
    assert base.fixed == {}
    edit = default_grid(run.stages[1], run.stage_rows("edit"))
    assert (edit.rows and edit.rows.var, edit.cols and edit.cols.var) == ("subject", "style")
    assert edit.fixed == {"guidance": "2"}


def test_cells_group_rows_by_their_axis_values_and_drop_other_fixed_values(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out")
    run = data.load(tmp_path / "out")
    edit = default_grid(run.stages[1], run.stage_rows("edit"))
    grouped = cells(edit, run.rows)
    assert set(grouped) == {(s, t) for s in syn.subjects for t in syn.styles}
    assert all(len(found) == 1 and found[0].vars["guidance"] == "2" for found in grouped.values())
    everything = GridSpec("edit", None, Axis("style", syn.styles), fixed={})
    assert {k: len(v) for k, v in cells(everything, run.rows).items()} == {("", "gold"): 9, ("", "glass"): 9}
