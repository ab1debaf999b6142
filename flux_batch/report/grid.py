"""The X/Y grid of one stage: which sweep variables become rows and columns, and which images fall in
each cell. Pure: takes rows, returns plain data. The HTML report starts from :func:`default_grid` and lets
the reader switch axes; the PNG contact sheet draws it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flux_batch.report.data import Row, StageInfo, axis_values

#: Beyond this many values an axis reads better as rows (paged) than as columns (scrolled).
MAX_DEFAULT_COLUMNS = 12


@dataclass(frozen=True)
class Axis:
    """A sweep variable laid along the grid, with its values in display order."""

    var: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """The variables a reader asked for on rows, columns and the third, grouping axis (``flux-batch report
    --rows A --cols B --group C``). Each stage that has a variable uses it; the others keep their default."""

    rows: str | None = None
    cols: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class GridSpec:
    """Rows and columns (either may be None: a single row or column), the grouping axis (one grid per
    value: a contact sheet each), and the value every other variable is held at (``fixed``; a variable
    absent from it is shown at all its values)."""

    stage: str
    rows: Axis | None
    cols: Axis | None
    fixed: Mapping[str, str]
    group: Axis | None = None

    def groups(self) -> list[tuple[str, GridSpec]]:
        """One ``(value, grid)`` per value of the grouping axis, the grid holding it at that value (one
        ``("", self)`` without a grouping axis)."""
        if self.group is None:
            return [("", self)]
        return [
            (v, GridSpec(self.stage, self.rows, self.cols, {**self.fixed, self.group.var: v}))
            for v in self.group.values
        ]


def all_axis_values(stage: StageInfo, rows: Sequence[Row]) -> dict[str, tuple[str, ...]]:
    """Every sweep variable of the stage with its values in display order."""
    return {var: tuple(axis_values(rows, var)) for var in stage.vars}


def default_axes(stage: StageInfo, values: Mapping[str, Sequence[str]]) -> tuple[str | None, str | None]:
    """``(rows, columns)``: the stage's first two product axes that vary, then any other varying variable.

    A chain stage lays its own first axis across (each row is then one upstream image and its edits). A
    single axis with many values becomes the rows (they page); otherwise it becomes the columns.
    """
    varying = [v for v in stage.vars if len(values.get(v, ())) > 1]
    ordered = [v for v in stage.product_axes if v in varying] + [
        v for v in varying if v not in stage.product_axes
    ]
    if not ordered:
        return None, None
    if len(ordered) == 1:
        only = ordered[0]
        return (only, None) if len(values[only]) > MAX_DEFAULT_COLUMNS else (None, only)
    row_var, col_var = (ordered[1], ordered[0]) if stage.needs else (ordered[0], ordered[1])
    if len(values[col_var]) > MAX_DEFAULT_COLUMNS and len(values[row_var]) < len(values[col_var]):
        row_var, col_var = col_var, row_var
    return row_var, col_var


def default_grid(stage: StageInfo, rows: Sequence[Row]) -> GridSpec:
    """The grid the report opens with: default axes, every other variable held at its first value."""
    return grid_of(stage, all_axis_values(stage, rows))


def grid_of(stage: StageInfo, values: Mapping[str, Sequence[str]], layout: Layout | None = None) -> GridSpec:
    """The grid of a stage whose variables take ``values`` (in display order): the default one, with the
    variables of ``layout`` that the stage has on its axes."""
    row_var, col_var = default_axes(stage, values)
    group_var = None
    if layout is not None:
        mine = {v for v in (layout.rows, layout.cols, layout.group) if v in values}
        free = [v for v in (row_var, col_var) if v and v not in mine]  # defaults the layout leaves free
        row_var = layout.rows if layout.rows in mine else (free.pop(0) if free else None)
        col_var = layout.cols if layout.cols in mine else (free.pop(0) if free else None)
        group_var = layout.group if layout.group in mine else None
    axes = (row_var, col_var, group_var)
    # A variable some jobs lack (set by `include:` for one model only, say) is not held at a value: held
    # at its first, it would hide every job that has another, e.g. a whole model's row.
    fixed = {v: vals[0] for v, vals in values.items() if v not in axes and vals and "" not in vals}
    return GridSpec(
        stage=stage.id,
        rows=Axis(row_var, tuple(values[row_var])) if row_var else None,
        cols=Axis(col_var, tuple(values[col_var])) if col_var else None,
        fixed=fixed,
        group=Axis(group_var, tuple(values[group_var])) if group_var else None,
    )


def cells(spec: GridSpec, rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    """The rows in each ``(row value, column value)`` cell ("" for a missing axis), in input order."""
    out: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.stage != spec.stage or any(row.vars.get(k, "") != v for k, v in spec.fixed.items()):
            continue
        key = (
            row.vars.get(spec.rows.var, "") if spec.rows else "",
            row.vars.get(spec.cols.var, "") if spec.cols else "",
        )
        out.setdefault(key, []).append(row)
    return out
