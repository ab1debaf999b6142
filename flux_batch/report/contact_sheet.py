"""``grid_=<stage>.png``: one stage's default X/Y grid as a single labelled image, for a message or a paper.

Drawn from the thumbnails with Pillow. Rows and columns carry their values, the corner names both axes,
the title says which values the other variables are held at. A chain stage's cell shows the upstream
image with an arrow to the edit; a failed job's cell says why. Big sweeps are cut to the first
``MAX_AXIS`` rows and columns (the title says so); the HTML report shows everything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from flux_batch.outputs.layout import IMAGES_DIR, sheet_name
from flux_batch.outputs.safepath import inside
from flux_batch.report.data import Row, StageInfo
from flux_batch.report.grid import GridSpec, cells
from flux_batch.report.thumbnails import thumb_path_for

MAX_AXIS = 12
#: The sheet aims at this width; cells shrink (down to ``MIN_CELL``) for many columns.
TARGET_WIDTH = 2400
MAX_CELL, MIN_CELL = 256, 128
PAD = 8
BACKGROUND, INK, MUTED, LINE = (255, 255, 255), (28, 30, 36), (105, 110, 122), (222, 224, 230)
FAILED_FILL, FAILED_INK = (253, 236, 236), (170, 30, 40)
PENDING_FILL = (240, 241, 244)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> Font:
    names = (
        ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf")
        if bold
        else ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")
    )
    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)  # Pillow's bundled font: always there


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line ends with an ellipsis if text was cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if font.getlength(trial) <= width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip() + "…"
    return [_clip(line, font, width) for line in lines]


def _clip(text: str, font: Font, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def sheet_path(out_dir: Path, stage: str, group: int = 0) -> Path:
    return Path(out_dir) / sheet_name(stage, group)


def write_contact_sheet(
    out_dir: Path, stage: StageInfo, spec: GridSpec, rows: Sequence[Row], group: int = 0
) -> Path | None:
    """Draw the stage's sheet for grid ``spec`` from ``rows`` (the stage's rows, or just the first of each
    cell the sheet shows: see :func:`sheet_cells`); None if there are none. ``group``: the sheet of the
    k-th value of the grid's grouping axis (``spec`` is then that value's grid: :meth:`GridSpec.groups`)."""
    if not rows:
        return None
    image = draw_sheet(out_dir, stage, spec, rows)
    target = sheet_path(out_dir, stage.id, group)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, "PNG")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def sheet_cells(spec: GridSpec) -> tuple[list[str], list[str]]:
    """The row and column values a sheet shows (big sweeps cut to the first ``MAX_AXIS``)."""
    return (
        list(spec.rows.values if spec.rows else ("",))[:MAX_AXIS],
        list(spec.cols.values if spec.cols else ("",))[:MAX_AXIS],
    )


def draw_sheet(out_dir: Path, stage: StageInfo, spec: GridSpec, rows: Sequence[Row]) -> Image.Image:
    """The sheet as a Pillow image (pure apart from reading thumbnails)."""
    row_values, col_values = sheet_cells(spec)
    chain = bool(stage.needs)
    per_cell = 2 if chain else 1
    cell = max(MIN_CELL, min(MAX_CELL, (TARGET_WIDTH - 200) // (len(col_values) * per_cell)))
    arrow = cell // 8 if chain else 0
    cell_w, cell_h = cell * per_cell + arrow, cell
    label_font, head_font, title_font = _font(15), _font(15, bold=True), _font(22, bold=True)
    small_font = _font(13)

    gap = PAD * 3 if chain else PAD
    label_w = 0
    if spec.rows:
        widest = max(label_font.getlength(v) for v in row_values)
        label_w = int(min(220, max(60, widest, head_font.getlength(f"{spec.rows.var} ↓")))) + 2 * PAD
    title_lines = _title_lines(stage, spec, len(row_values), len(col_values))
    title_h = PAD * 2 + 30 + 20 * (len(title_lines) - 1)
    head_h = 3 * 18 + 2 * PAD if spec.cols or spec.rows else 0
    width = label_w + len(col_values) * (cell_w + gap) + PAD * 2
    height = title_h + head_h + len(row_values) * (cell_h + PAD) + PAD
    width = max(width, int(title_font.getlength(title_lines[0])) + 2 * PAD)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    draw.text((PAD, PAD), title_lines[0], font=title_font, fill=INK)
    for i, line in enumerate(title_lines[1:]):
        draw.text((PAD, PAD + 32 + 20 * i), line, font=small_font, fill=MUTED)
    top = title_h + head_h
    left = PAD + label_w
    if spec.rows:
        draw.text((PAD, top - 22 - PAD), f"{spec.rows.var} ↓", font=head_font, fill=MUTED)
    if spec.cols:
        draw.text((left, title_h), f"{spec.cols.var} →", font=head_font, fill=MUTED)
        for c, value in enumerate(col_values):
            x = left + c * (cell_w + gap)
            for i, line in enumerate(_wrap(value or "(none)", head_font, cell_w - 4, 2)):
                draw.text((x + 2, title_h + 22 + 18 * i), line, font=head_font, fill=INK)
            if c and chain:
                draw.line((x - gap // 2, title_h + 20, x - gap // 2, height - PAD), fill=LINE, width=2)
    grouped = cells(spec, rows)
    for r, row_value in enumerate(row_values):
        y = top + r * (cell_h + PAD)
        if spec.rows:
            for i, line in enumerate(_wrap(row_value or "(none)", head_font, label_w - 2 * PAD, 5)):
                draw.text((PAD, y + 4 + 18 * i), line, font=head_font, fill=INK)
        draw.line((PAD, y - PAD // 2, width - PAD, y - PAD // 2), fill=LINE)
        for c, col_value in enumerate(col_values):
            x = left + c * (cell_w + gap)
            found = grouped.get((row_value, col_value), [])
            if found:
                _draw_cell(sheet, draw, out_dir, found[0], (x, y), cell, arrow, chain, small_font)
    return sheet


def _title_lines(stage: StageInfo, spec: GridSpec, n_rows: int, n_cols: int) -> list[str]:
    model = stage.model
    if "model" in stage.vars:  # a model axis: the model held, else every model of the grid
        model = spec.fixed.get("model") or (
            "models by "
            + (
                "row"
                if spec.rows and spec.rows.var == "model"
                else "column"
                if spec.cols and spec.cols.var == "model"
                else "image"
            )
        )
    lines = [f"{stage.id} · {model}"]
    axes = []
    if spec.rows:
        cut = f" (first {n_rows} of {len(spec.rows.values)})" if n_rows < len(spec.rows.values) else ""
        axes.append(f"rows: {spec.rows.var}{cut}")
    if spec.cols:
        cut = f" (first {n_cols} of {len(spec.cols.values)})" if n_cols < len(spec.cols.values) else ""
        axes.append(f"columns: {spec.cols.var}{cut}")
    if axes:
        lines.append(" · ".join(axes))
    if spec.fixed:
        lines.append("held at: " + ", ".join(f"{k} = {v}" for k, v in spec.fixed.items()))
    return lines


def _draw_cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    out_dir: Path,
    row: Row,
    at: tuple[int, int],
    cell: int,
    arrow: int,
    chain: bool,
    font: Font,
) -> None:
    x, y = at
    if chain:
        upstream = next((p for p in row.image_inputs.values() if p.startswith(f"{IMAGES_DIR}/")), "")
        if upstream and inside(out_dir, upstream) is None:
            upstream = ""  # a tampered CSV
        _paste(sheet, draw, out_dir, thumb_path_for(upstream) if upstream else "", (x, y), cell, None, font)
        ay, ax = y + cell // 2, x + cell + arrow // 2
        draw.polygon(
            [(ax - arrow // 3, ay - arrow // 3), (ax + arrow // 3, ay), (ax - arrow // 3, ay + arrow // 3)],
            fill=MUTED,
        )
        x += cell + arrow
    _paste(sheet, draw, out_dir, row.thumb if row.status == "succeeded" else "", (x, y), cell, row, font)


def _paste(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    out_dir: Path,
    rel_thumb: str,
    at: tuple[int, int],
    cell: int,
    row: Row | None,
    font: Font,
) -> None:
    x, y = at
    path = inside(out_dir, rel_thumb) if rel_thumb else None
    if path is not None and not path.is_file() and row is not None and row.file_name:
        path = inside(out_dir, row.file_name)  # no thumbnail yet (a stopped run's report): the image
    if path is not None and path.is_file():
        with Image.open(path) as thumb:
            thumb.draft("RGB", (cell, cell))  # a JPEG decodes at the scale it is shown
            thumb.thumbnail((cell, cell))
            sheet.paste(thumb.convert("RGB"), (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        return
    failed = row is not None and row.failed
    draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=FAILED_FILL if failed else PENDING_FILL)
    status = row.status if row is not None else "no image"
    draw.text((x + PAD, y + PAD), status, font=font, fill=FAILED_INK if failed else MUTED)
    if row is not None and row.error:
        for i, line in enumerate(_wrap(row.error, font, cell - 2 * PAD, max(1, (cell - 40) // 17))):
            draw.text((x + PAD, y + PAD + 22 + 17 * i), line, font=font, fill=INK)
