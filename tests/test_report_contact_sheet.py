"""grid_=<stage>.png: one labelled image per stage, sized by its grid, failures visible, big sweeps cut."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from report_fixtures import build_output_folder

from flux_batch.report import data
from flux_batch.report.contact_sheet import FAILED_FILL, MAX_AXIS, write_contact_sheet
from flux_batch.report.grid import default_grid


def _sheets(out: Path, **kwargs: object) -> dict[str, Image.Image]:
    build_output_folder(out, **kwargs)  # type: ignore[arg-type]
    run = data.load(out)
    sheets = {}
    for stage in run.stages:
        rows = run.stage_rows(stage.id)
        path = write_contact_sheet(out, stage, default_grid(stage, rows), rows)
        assert path == out / f"grid_={stage.id}.png"
        with Image.open(path) as image:
            sheets[stage.id] = image.convert("RGB")
    return sheets


def _count(image: Image.Image, colour: tuple[int, int, int]) -> int:
    counts = {c: n for n, c in image.getcolors(image.width * image.height) or []}
    return counts.get(colour, 0)


def test_each_stage_gets_a_sheet_showing_its_images(tmp_path: Path) -> None:
    sheets = _sheets(tmp_path / "out")
    assert set(sheets) == {"base", "edit"}
    with Image.open(next((tmp_path / "out/.thumbs/=base").glob("*/*.webp"))) as t:
        corner = t.convert("RGB").getpixel((2, 2))
    assert _count(sheets["base"], corner) > 500  # the thumbnails are pasted in


def test_a_failed_job_shows_as_a_failure_cell_and_only_then(tmp_path: Path) -> None:
    cell_area = 128 * 128
    assert _count(_sheets(tmp_path / "a")["base"], FAILED_FILL) > cell_area // 2
    assert _count(_sheets(tmp_path / "b", fail=None)["base"], FAILED_FILL) == 0


def test_more_columns_make_a_wider_sheet(tmp_path: Path) -> None:
    three = _sheets(tmp_path / "a", guidances=("2", "3", "4"))["base"]
    five = _sheets(tmp_path / "b", guidances=("2", "3", "4", "5", "6"))["base"]
    assert five.width > three.width and five.height == three.height


def test_a_chain_stage_draws_each_edit_beside_its_upstream_image(tmp_path: Path) -> None:
    sheets = _sheets(tmp_path / "out", styles=("gold",), guidances=("2",))
    base, edit = sheets["base"], sheets["edit"]
    # only the subject varies: three columns of one image (base) and of an image pair (edit)
    assert edit.height == base.height
    assert edit.width > 1.8 * base.width


def test_big_sweeps_are_cut_to_the_first_rows(tmp_path: Path) -> None:
    subjects = [f"s{i:02d}" for i in range(MAX_AXIS + 3)]
    at_limit = _sheets(tmp_path / "a", subjects=subjects[:MAX_AXIS], styles=("gold",))["base"]
    over = _sheets(tmp_path / "b", subjects=subjects, styles=("gold",))["base"]
    assert over.size == at_limit.size


def test_a_stage_without_rows_gets_no_sheet(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    stage = data.StageInfo("later", "m/x")
    assert write_contact_sheet(tmp_path / "out", stage, default_grid(stage, []), []) is None
    assert not list((tmp_path / "out").glob("grid_*later.png"))
