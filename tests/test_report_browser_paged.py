"""A big run's report in a real browser: its rows are in parts beside the page, loaded from file:// when a
view needs them, and every count it shows is the table's."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from report_fixtures import build_output_folder
from test_report_browser import CHROMIUM, CHROMIUM_ARGS, FAILED

from flux_batch.report import write_report
from flux_batch.report.parts import INLINE_ROWS, PART_ROWS

pytestmark = pytest.mark.slow

Tab = tuple[Page, list[str]]  # the page, and every URL it requested
SUBJECTS = tuple(f"subject {i}" for i in range(40))
GUIDANCES = tuple(str(2 + i / 20) for i in range(50))  # 2,000 generations, 4,000 edits: 6,000 rows


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big") / "out"
    build_output_folder(out, subjects=SUBJECTS, guidances=GUIDANCES, fail=("subject 3", "2.5"), image_size=16)
    write_report(out)
    return out


@pytest.fixture(scope="module")
def rows(big: Path) -> list[dict[str, str]]:
    with open(big / "manifest.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def page(big: Path) -> Iterator[Tab]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        requests: list[str] = []
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto((big / "report.html").as_uri())
        tab.wait_for_selector("body[data-ready='1']")
        yield tab, requests
        browser.close()
        assert problems == []
        assert all(u.startswith("file://") for u in requests)  # nothing from outside the folder


def _parts(requests: list[str]) -> set[str]:
    return {u.rsplit("/", 1)[1] for u in requests if "/.report/" in u}


def test_the_page_opens_on_its_first_stage_and_counts_as_the_table(
    page: Tab, rows: list[dict[str, str]]
) -> None:
    tab, requests = page
    assert len(rows) == 6000 > INLINE_ROWS
    base_parts = -(-2000 // PART_ROWS)
    assert _parts(requests) == {f"p{k}.js" for k in range(base_parts)}  # only the first stage's rows
    statuses = Counter({r["job_id"]: r["status"] for r in rows}.values())
    cards = tab.inner_text("#summary")
    images = sum(1 for r in rows if r["status"] == "succeeded")
    assert f"{images:,}" in cards and "from 6,000 jobs" in cards
    for status, n in statuses.items():
        assert tab.inner_text(f".chips .chip.{status}") == f"{status} {n:,}"
    tabs = tab.eval_on_selector_all("#stage-tabs .count", "els => els.map(e => e.textContent)")
    assert tabs == ["2000", "4000"]
    assert tab.locator("#grid .shot[data-job]").count() > 0


def test_the_table_loads_every_part_and_shows_every_row(page: Tab, rows: list[dict[str, str]]) -> None:
    tab, requests = page
    tab.click("#tab-table")
    tab.wait_for_function("() => /of 6,000 rows/.test(document.getElementById('table-count')?.textContent)")
    assert len(_parts(requests)) == -(-2000 // PART_ROWS) + -(-4000 // PART_ROWS)
    tab.select_option("#table-status", "failures")
    failures = sum(1 for r in rows if r["status"] in FAILED)
    assert tab.inner_text("#table-count").startswith(f"{failures:,} of 6,000 rows")


def test_another_stage_and_the_viewer_load_their_parts(page: Tab, rows: list[dict[str, str]]) -> None:
    tab, requests = page
    tab.click("[data-stage=edit]")
    tab.wait_for_selector("#grid .pair .shot.up img")
    shot = tab.locator("#grid .shot:not(.up):not(.tile)").first
    job_id = shot.get_attribute("data-job")
    shot.click()
    tab.wait_for_selector("#viewer-yaml")
    assert f"# Reproduces job {job_id}" in tab.inner_text("#viewer-yaml")
    row = next(r for r in rows if r["job_id"] == job_id)
    assert row["prediction_id"] in tab.inner_text("#viewer-side")
    assert any(name.startswith("d") for name in _parts(requests))  # the details came from their part
