"""report.html: self-contained, carries every job, survives hostile text, and says how the run went."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_output_folder
from runner_harness import base_jobs, run, simulator

from flux_batch.report import write_report
from flux_batch.report.html import format_duration, script_json
from flux_batch.report.parts import DETAIL_FIELDS, FIELDS
from flux_batch.runner.executor import Executor
from flux_batch.runner.progress import Event

DATA_TAG = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)
PART = re.compile(r"^fluxReport\.(part|detail)\((\d+),(.*)\);\n$", re.S)
INLINE = re.compile(r"<script>(fluxReport\..*?\n)</script>", re.S)


def _fixed_now() -> str:
    return "2025-01-02T03:04:05Z"


def _page(out: Path) -> str:
    return write_report(out, now=_fixed_now).read_text(encoding="utf-8")


def _payload(page: str) -> dict[str, Any]:
    match = DATA_TAG.search(page)
    assert match, "the page embeds its data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def _calls(text: str) -> tuple[str, int, list[list[Any]]]:
    match = PART.match(text)
    assert match, "a part is one call of fluxReport.part or .detail"
    return match.group(1), int(match.group(2)), json.loads(match.group(3))


def _rows(out: Path, page: str) -> list[dict[str, Any]]:
    """Every row the page's parts hold, in the order of the parts, light fields and details merged: from
    the page itself (a small report) or from its part files."""
    payload = _payload(page)
    inline = {(c, k): rows for c, k, rows in map(_calls, INLINE.findall(page))}
    rows = []
    for k, part in enumerate(payload["parts"]):
        both = []
        for call, key in (("part", "src"), ("detail", "detail")):
            if inline:
                values = inline[(call, k)]
            else:
                assert _calls((out / payload["dir"] / part[key]).read_text(encoding="utf-8"))[:2] == (call, k)
                values = _calls((out / payload["dir"] / part[key]).read_text(encoding="utf-8"))[2]
            assert len(values) == part["rows"]
            both.append(values)
        for values, more in zip(*both, strict=True):
            rows.append(dict(zip(FIELDS, values, strict=True)) | dict(zip(DETAIL_FIELDS, more, strict=True)))
    return rows


def test_write_report_writes_the_page_and_a_contact_sheet_per_stage(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    path = write_report(tmp_path / "out")
    assert path == tmp_path / "out/report.html"
    assert (tmp_path / "out/grid_=base.png").is_file() and (tmp_path / "out/grid_=edit.png").is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_the_page_needs_nothing_from_outside_the_folder(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    page = _page(tmp_path / "out")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(", page)  # parts are added by the script
    for element in ('id="tab-grid"', 'id="tab-table"', 'id="grid"', 'id="jobs"', '<dialog id="viewer"'):
        assert element in page


def test_the_parts_hold_every_row_with_its_parameters(tmp_path: Path) -> None:
    syn = build_output_folder(tmp_path / "out")
    page = _page(tmp_path / "out")
    payload = _payload(page)
    assert payload["fields"] == list(FIELDS) and payload["detail_fields"] == list(DETAIL_FIELDS)
    rows = _rows(tmp_path / "out", page)
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
    assert (tmp_path / "out" / chain["up_thumb"]).is_file()


def test_big_folders_are_split_in_parts_of_one_stage_beside_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flux_batch.report.parts.PART_ROWS", 4)
    monkeypatch.setattr("flux_batch.report.INLINE_ROWS", 20)
    monkeypatch.setattr("flux_batch.report.html.INLINE_ROWS", 20)
    syn = build_output_folder(tmp_path / "out")
    page = _page(tmp_path / "out")
    assert "<script>fluxReport" not in page
    payload = _payload(page)
    base, edit = payload["stages"]
    assert [payload["parts"][k]["stage"] for k in base["parts"]] == ["base"] * 3  # 9 rows
    assert [payload["parts"][k]["rows"] for k in edit["parts"]] == [4, 4, 4, 4, 2]  # 18 rows
    assert [payload["parts"][k]["offset"] for k in edit["parts"]] == [0, 4, 8, 12, 16]
    assert payload["rows"] == 27 and (base["count"], edit["count"]) == (9, 18)
    rows = _rows(tmp_path / "out", page)
    assert sorted(r["job_id"] for r in rows) == sorted(r["job_id"] for r in syn.rows)


def test_the_page_carries_each_stages_default_grid(tmp_path: Path) -> None:
    build_output_folder(tmp_path / "out")
    base, edit = _payload(_page(tmp_path / "out"))["stages"]
    assert (base["rows"], base["cols"], base["fixed"]) == ("subject", "guidance", {})
    assert base["values"] == {"subject": ["cat", "dog", "fox"], "guidance": ["2", "3", "4.5"]}
    assert (edit["rows"], edit["cols"], edit["fixed"]) == ("subject", "style", {"guidance": "2"})
    assert edit["needs"] == ["base"] and edit["sheet"] == "grid_=edit.png"


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
    assert hostile not in page and "<script>alert" not in page
    assert _rows(out, page)[0]["input"]["prompt"] == hostile
    part = INLINE.findall(page)[0]
    assert "<" not in part and "\u2028" not in part
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
    rows = _rows(tmp_path / "out", _page(tmp_path / "out"))
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


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_reports_temporary_files_are_removed_by_the_next(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_output_folder(out)
    dead, alive = _dead_pid(), os.getppid()
    leftovers = [
        out / f".grid_=base.png.{dead}.tmp",
        out / f".report.html.{dead}.tmp",
        next(out.glob(".thumbs/=base/*")) / f".cat.webp.{dead}-140234.tmp",
        out / f".report/.tmp-{dead}/p0.js",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    busy = out / f".grid_=edit.png.{alive}.tmp"  # another report, still writing
    busy.write_bytes(b"being written")
    write_report(out)
    assert [p for p in leftovers if p.exists()] == [] and not (out / f".report/.tmp-{dead}").exists()
    assert busy.exists()


def test_the_counts_are_the_tables_even_where_run_json_says_otherwise(tmp_path: Path) -> None:
    out = tmp_path / "out"
    syn = build_output_folder(out)
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames or [], list(reader)
    with open(out / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows + rows[:10])  # rows written twice, as an older version could
    run = json.loads((out / "run.json").read_text())
    run["summary"].update(images=34, jobs=37, counts={"succeeded": 34, "failed": 1, "skipped": 2})
    (out / "run.json").write_text(json.dumps(run))
    page = _page(out)
    text = re.sub(r"<[^>]+>", " ", page.split('<section id="summary"', 1)[1].split("</section>", 1)[0])
    assert "24" in text and "from 27 jobs" in text and "34" not in text
    assert _payload(page)["rows"] == len(syn.rows) == 27 and len(_rows(out, page)) == 27
    assert 'class="chip succeeded">succeeded 24<' in page


async def test_an_interrupted_run_says_so_in_its_report(tmp_path: Path) -> None:
    # Ctrl-C after a few jobs: run.json got its finished_at all the same, and the report said nothing.
    executors: list[Executor] = []

    def on_event(event: Event, tracker: object) -> None:
        if event.kind == "job" and event.status == "succeeded" and executors:
            executors[0].interrupt()

    result = await run(simulator(), base_jobs(30), tmp_path, max_in_flight=2, on_executor=executors.append,
                       on_event=on_event)  # fmt: skip
    left = sum(n for status, n in result.counts.items() if status != "succeeded")
    assert result.result.interrupted and left > 0
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert 'id="unfinished"' in page
    banner = page.split('id="unfinished">', 1)[1].split("</p>", 1)[0]
    assert "interrupted" in banner and f"{left:,} jobs not done" in banner
