"""Picks in the report, in Debian's chromium: mark images with the keyboard and Shift+click, export them as a
download from ``file://``, and ``flux-batch refine`` the file into a manifest that validates and runs on the
simulator (the same prompts and seeds on FLUX.2 [pro], two seeds each)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, sync_playwright

from flux_batch import load
from flux_batch.cli import main

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
EXPLORE = """\
version: 1
name: explore
seed: 5
api: {simulator: true}
stages:
  - id: sketch
    prompt: "a {subject}, {style}"
    input: {aspect_ratio: "3:2"}
    matrix:
      subject: [red fox, snow owl, glass lighthouse]
      style: [watercolor, pencil]
      model: [black-forest-labs/flux-schnell, black-forest-labs/flux-dev]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("picks")
    (root / "explore.yaml").write_text(EXPLORE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("flux_batch.api.SIMULATOR_LATENCY_S", 0.01)
        assert main(["run", str(root / "explore.yaml"), "--out", str(root / "out"), "--quiet"]) == 0
    return root / "out"


@pytest.fixture(scope="module")
def browser(run_dir: Path) -> Iterator[Browser]:
    with sync_playwright() as p:  # after the run: the runner's asyncio.run() cannot start inside it
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, run_dir: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert problems == []


def _picked(page: Page) -> list[str]:
    return page.eval_on_selector_all("#grid .shot.picked", "els => els.map(e => e.dataset.job)")


def test_picks_export_from_file_and_refine_into_a_manifest_that_runs(
    page: Page, run_dir: Path, tmp_path: Path
) -> None:
    shots = page.locator("#grid button.shot[data-index]")
    assert shots.count() >= 4
    first, second, third = (shots.nth(i).get_attribute("data-job") for i in range(3))
    shots.nth(0).focus()
    page.keyboard.press("p")  # the image in focus
    shots.nth(1).click(modifiers=["Shift"])  # Shift+click picks without opening the viewer
    assert not page.locator("#viewer").evaluate("d => d.open")
    shots.nth(2).click()  # opens the viewer: p picks the image shown, and again un-picks it
    page.keyboard.press("p")
    assert page.locator("#viewer-pick").inner_text().startswith("★")
    page.keyboard.press("p")
    page.keyboard.press("p")
    page.keyboard.press("Escape")
    assert sorted(_picked(page)) == sorted([first, second, third])
    assert page.locator("#picks-count").inner_text() == "3"

    page.reload()  # kept by the page across a reload
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#picks-count").inner_text() == "3" and len(_picked(page)) == 3
    page.click("#picks-open")
    assert page.locator("#picks-list li").count() == 3
    assert str(run_dir) in page.locator("#picks-command").inner_text()
    page.locator(f"#picks-list li[data-job='{third}'] button").click()  # remove one
    assert page.locator("#picks-list li").count() == 2
    with page.expect_download() as info:
        page.click("#picks-export")
    download = info.value
    assert download.suggested_filename == "picks.json"
    picks_file = tmp_path / "picks.json"
    download.save_as(picks_file)
    picks = json.loads(picks_file.read_text(encoding="utf-8"))["picks"]
    assert [p["job_id"] for p in picks] == [first, second]

    target = tmp_path / "refine.yaml"
    refine = [sys.executable, "-m", "flux_batch", "refine", str(run_dir), "--picks", str(picks_file)]
    refine += ["--model", "black-forest-labs/flux-2-pro", "--seeds", "2", "--out-manifest", str(target)]
    done = subprocess.run(refine, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    manifest = load(target)
    assert [s.model for s in manifest.stages] == ["black-forest-labs/flux-2-pro"]
    with open(run_dir / "manifest.csv", encoding="utf-8", newline="") as f:
        source = {r["job_id"]: r for r in csv.DictReader(f)}
    cases = yaml.safe_load(target.read_text(encoding="utf-8"))["stages"][0]["cases"]
    expected = [(source[j]["prompt"], int(source[j]["seed"]) + k) for j in (first, second) for k in range(2)]
    assert [(c["text"], c["seed"]) for c in cases] == expected
    run = [
        sys.executable,
        "-m",
        "flux_batch",
        "run",
        str(target),
        "--simulator",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
    ]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "r" / "manifest.csv", encoding="utf-8", newline="") as f:
        made = list(csv.DictReader(f))
    assert [(r["model"], r["status"]) for r in made] == [("black-forest-labs/flux-2-pro", "succeeded")] * 4
    assert [(r["prompt"], int(r["seed"])) for r in made] == expected


def test_compare_shows_the_other_runs_image_beside_each_and_it_loads(browser: Browser, run_dir: Path) -> None:
    other = run_dir.parent / "copy"
    shutil.copytree(run_dir, other, dirs_exist_ok=True)
    assert main(["report", str(other), "--compare", str(run_dir)]) == 0
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((other / "report.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    pairs = page.locator("#grid .pair.compare")
    assert pairs.count() == page.locator("#grid button.shot[data-index]").count() > 0
    images = page.locator("#grid .pair.compare a.cmp img")
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=images.nth(i).element_handle()
        )
    assert "/picks" in (images.first.evaluate("img => img.src")) and "/out/" in images.first.evaluate(
        "i => i.src"
    )
    page.locator("#grid button.shot[data-index]").first.click()
    assert page.locator("#viewer-compare img").count() == 1
    page.close()
    assert errors == []
