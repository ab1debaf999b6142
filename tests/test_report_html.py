"""report.html: self-contained, carries every job, survives hostile text, and says how the run went."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_output_folder

from flux_batch.report import write_report
from flux_batch.report.html import FIELDS, format_duration, script_json

DATA_TAG = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def _fixed_now() -> str:
    return "2025-01-02T03:04:05Z"


def _page(out: Path) -> str:
    return write_report(out, now=_fixed_now).read_text(encoding="utf-8")


def _payload(page: str) -> dict[str, Any]:
    match = DATA_TAG.search(page)
    assert match, "the page embeds its data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def _rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(payload["fields"], values, strict=True)) for values in payload["rows"]]


def test_write_report_writes_the_page_and_a_contact_sheet_per_stage(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    path = write_report(tmp_path / "out")
    assert path == tmp_path / "out/report.html"
    assert (tmp_path / "out/grid_base.png").is_file() and (tmp_path / "out/grid_edit.png").is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    page = _page(tmp_path / "out")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(", page)
    for element in ('id="tab-grid"', 'id="tab-table"', 'id="grid"', 'id="jobs"', '<dialog id="viewer"'):
        assert element in page


def test_the_page_embeds_every_row_with_its_parameters(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out")
    payload = _payload(_page(tmp_path / "out"))
    assert payload["fields"] == list(FIELDS)
    rows = _rows(payload)
    assert [r["job_id"] for r in rows] == [r["job_id"] for r in syn.rows]
    failed = next(r for r in rows if r["job_id"] == syn.failed_job)
    assert failed["status"] == "failed" and "E005" in failed["error"] and failed["thumb"] == ""
    first = rows[0]
    assert first["vars"] == {"subject": "cat", "guidance": "2"}
    assert first["input"]["guidance"] == 2 and first["input"]["seed"] == syn.rows[0]["seed"]
    assert first["thumb"] == first["file_name"].replace("images/", ".thumbs/").replace(".png", ".webp")
    assert first["manifest"].startswith("# Reproduces job ") and "version: 1" in first["manifest"]
    chain = next(r for r in rows if r["stage"] == "edit" and r["status"] == "succeeded")
    assert chain["image_inputs"] == ["input_image"] and chain["upstream_job_id"]


def test_the_page_carries_each_stages_default_grid(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    base, edit = _payload(_page(tmp_path / "out"))["stages"]
    assert (base["rows"], base["cols"], base["fixed"]) == ("subject", "guidance", {})
    assert base["values"] == {"subject": ["cat", "dog", "fox"], "guidance": ["2", "3", "4.5"]}
    assert (edit["rows"], edit["cols"], edit["fixed"]) == ("subject", "style", {"guidance": "2"})
    assert edit["needs"] == ["base"] and edit["sheet"] == "grid_edit.png"


def test_hostile_text_cannot_break_out_of_the_data_tag(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_output_folder(out)
    hostile = '</script><script>alert("x")</script><!-- & é'
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    rows[0]["prompt"] = hostile
    with open(out / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, header or [])
        writer.writeheader()
        writer.writerows(rows)
    page = _page(out)
    assert page.count("</script>") == 2  # the data tag's and the script's own
    assert _rows(_payload(page))[0]["input"]["prompt"] == hostile
    assert json.loads(script_json(hostile)) == hostile


def test_the_summary_shows_counts_cost_wall_time_and_rate(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    page = _page(tmp_path / "out")
    summary = page.split('<section id="summary"', 1)[1].split("</section>", 1)[0]
    text = re.sub(r"<[^>]+>", " ", summary)
    for expected in (
        "Images",
        "24",
        "from 27 jobs",
        "Failed",
        "3",
        "$0.84",
        "1 min 23 s",
        "588/min",
        "2 × 429",
    ):
        assert expected in text
    assert 'class="chip failed">failed 1<' in page and 'class="chip skipped">skipped 2<' in page
    assert 'id="unfinished"' not in page
    assert "generated 2025-01-02T03:04:05Z" in page


def test_an_unfinished_run_says_so(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out", finished=False)
    assert 'id="unfinished"' in _page(tmp_path / "out")


def test_missing_thumbnails_are_made_and_missing_images_shown_as_missing(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out", thumbnails=False)
    gone = syn.rows[1]["file_name"]
    (tmp_path / "out" / gone).unlink()
    rows = _rows(_payload(_page(tmp_path / "out")))
    assert all((tmp_path / "out" / r["thumb"]).is_file() for r in rows if r["thumb"])
    assert next(r for r in rows if r["file_name"] == gone)["thumb"] == ""
    assert sum(1 for r in rows if r["thumb"]) == 24 - 1


def test_the_page_is_the_same_for_the_same_folder(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    assert _page(tmp_path / "out") == _page(tmp_path / "out")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (4.25, "4.2 s"), (42, "42 s"), (83.4, "1 min 23 s"), (3725, "1 h 2 min")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
