"""The report in a real browser: Debian's chromium, driven by Playwright, on the report of a real run.

The run is ``pipelines/chain.yaml`` (generate with flux-pro, then edit each image with flux-kontext-pro)
through the runner against the simulator served on loopback, with every fifth create failing the content
filter, so the report has failures, skipped chain jobs and upstream/edit pairs to show.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, sync_playwright

import flux_batch as manifest  # manifest.load: flux_batch.load
from flux_batch.cli import main
from flux_batch.jobs.expand import expand
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.config import parse_fault
from flux_batch.simulator.server import serve_in_thread

pytestmark = pytest.mark.slow

PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "chain.yaml"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
FAILED = {"failed", "canceled", "aborted", "expired", "skipped"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chain") / "out"
    app = create_app(SimConfig(latency=0.3, seed=3, faults=(parse_fault("content_filter:every=5"),)))
    with pytest.MonkeyPatch.context() as mp, serve_in_thread(app) as url:
        mp.setenv("REPLICATE_API_TOKEN", "r8_test")
        code = main(["run", str(PIPELINE), "--base-url", f"{url}/v1", "--out", str(out), "--quiet", "--yes"])
    assert code == 1  # finished, with the content filter's failures
    assert (out / "report.html").is_file()
    return out


@pytest.fixture(scope="module")
def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "manifest.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep() -> dict[str, Any]:
    stages = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))["stages"]
    return {s["id"]: s["matrix"] for s in stages}


@pytest.fixture(scope="module")
def browser(run_dir: Path) -> Iterator[Browser]:
    # The run goes first: Playwright's sync API keeps an event loop running in this thread from here on,
    # and the runner's asyncio.run() cannot start inside it.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, run_dir: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert problems == []
    assert [u for u in requests if not u.startswith(("file://", "blob:", "data:"))] == []  # no network


def _labels(page: Page, kind: str) -> list[str]:
    return page.eval_on_selector_all(f"#grid th.{kind}-label", "els => els.map(e => e.dataset.value)")


def _assert_visible_images_loaded(page: Page) -> int:
    """Scroll every grid image into view and wait until it has decoded; return how many there are."""
    images = page.locator("#grid img")
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return images.count()


def test_grid_has_the_sweeps_rows_and_columns_and_every_image_loads(
    page: Page, sweep: dict[str, Any], csv_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    assert _labels(page, "row") == sweep["product"]["product"]
    assert _labels(page, "col") == sweep["product"]["color"]
    product_rows = [r for r in csv_rows if r["stage"] == "product"]
    ok = sum(1 for r in product_rows if r["status"] == "succeeded")
    assert _assert_visible_images_loaded(page) == ok
    assert page.locator("#grid .tile.failed").count() == len(product_rows) - ok > 0
    page.screenshot(path=tmp_path / "grid.png", full_page=True)
    assert (tmp_path / "grid.png").stat().st_size > 10_000


def test_axes_switch_and_a_chain_stage_shows_each_edit_beside_its_upstream_image(
    page: Page, sweep: dict[str, Any], csv_rows: list[dict[str, str]]
) -> None:
    page.select_option("#rows-axis", "color")  # taking the columns' variable swaps the axes
    assert _labels(page, "row") == sweep["product"]["color"]
    assert _labels(page, "col") == sweep["product"]["product"]
    page.click("#swap-axes")
    assert _labels(page, "row") == sweep["product"]["product"]
    page.select_option("#cols-axis", "")
    assert _labels(page, "col") == [] and page.locator("#grid .cell").count() == 4

    page.click("[data-stage=scene]")
    assert _labels(page, "row") == sweep["product"]["product"]
    assert _labels(page, "col") == sweep["scene"]["setting"]
    color = page.locator("select.filter[data-var=color]")
    assert color.input_value() == sweep["product"]["color"][0]
    shown = [r for r in csv_rows if r["stage"] == "scene" and r["color"] == sweep["product"]["color"][0]]
    edits_with_upstream = sum(1 for r in shown if r["status"] == "succeeded")
    assert page.locator("#grid .pair:has(.shot.up) .shot:not(.up) img").count() == edits_with_upstream
    _assert_visible_images_loaded(page)
    other = sweep["product"]["color"][1]
    color.select_option(other)
    shown = [r for r in csv_rows if r["stage"] == "scene" and r["color"] == other]
    assert page.locator("#grid .shot[data-job]").count() == len(shown)
    _assert_visible_images_loaded(page)
    color.select_option(label="all 2")  # every colour at once: two jobs a cell
    assert page.locator("#grid .shot[data-job]").count() == sum(1 for r in csv_rows if r["stage"] == "scene")


def test_opening_an_image_shows_its_parameters_and_a_manifest_that_reproduces_it(
    page: Page, run_dir: Path, csv_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    page.click("[data-stage=scene]")
    first = page.locator("#grid .shot:not(.up):not(.tile)").first
    job_id = first.get_attribute("data-job")
    row = next(r for r in csv_rows if r["job_id"] == job_id)
    first.click()
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function(
        "() => { const i = document.getElementById('viewer-img'); return i && i.naturalWidth > 0 }"
    )
    inputs = page.inner_text("#viewer-input")
    assert row["seed"] in inputs and row["prompt"] in inputs and row["input_input_image"] in inputs
    page.click("#viewer-copy")
    page.wait_for_function("() => document.getElementById('viewer-copied').textContent === 'copied'")
    page.screenshot(path=tmp_path / "viewer.png")

    text = page.inner_text("#viewer-yaml")
    document = yaml.safe_load(text)
    assert document["version"] == 1
    [stage] = document["stages"]
    assert stage["model"] == row["model"]
    assert stage["input"]["input_image"] == {"file": row["input_input_image"]}
    assert stage["input"]["seed"] == int(row["seed"])
    saved = run_dir / f"repro-{job_id}.yaml"
    saved.write_text(text, encoding="utf-8")
    try:
        [job] = list(expand(manifest.load(saved)))
    finally:
        os.remove(saved)
    assert job.seed == int(row["seed"]) and job.prompt == row["prompt"]
    upstream = (run_dir / row["input_input_image"]).read_bytes()
    assert job.input["input_image"]["sha256"] == hashlib.sha256(upstream).hexdigest()

    title = page.inner_text("#viewer-title")
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#viewer-title") != title
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer:not([open])", state="attached")


def test_the_table_filters_to_failures_with_their_errors_and_sorts(
    page: Page, csv_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    page.click("#tab-table")
    assert page.locator("#jobs tbody tr").count() == len(csv_rows)
    page.select_option("#table-status", "failures")
    failures = [r for r in csv_rows if r["status"] in FAILED]
    shown = page.locator("#jobs tbody tr")
    assert shown.count() == len(failures) > 0
    assert {shown.nth(i).get_attribute("data-status") for i in range(shown.count())} <= FAILED
    errors = page.eval_on_selector_all("#jobs td.error", "els => els.map(e => e.textContent)")
    assert sorted(errors) == sorted(r["error"] for r in failures) and all(errors)
    page.click("#jobs th[data-key=seed]")
    seeds = page.eval_on_selector_all("#jobs td[data-key=seed]", "els => els.map(e => Number(e.textContent))")
    assert len(seeds) == len(failures) and seeds == sorted(seeds)
    page.click("#jobs th[data-key=seed]")
    assert page.eval_on_selector_all(
        "#jobs td[data-key=seed]", "els => els.map(e => Number(e.textContent))"
    ) == sorted(seeds, reverse=True)
    page.fill("#table-search", "desk lamp")
    page.wait_for_function(
        "n => document.querySelectorAll('#jobs tbody tr').length === n",
        arg=sum(1 for r in failures if "desk lamp" in r["prompt"]),
    )
    page.screenshot(path=tmp_path / "failures.png", full_page=True)
    assert (tmp_path / "failures.png").stat().st_size > 10_000
