"""How the report scales: write_report and the page in chromium on a synthetic output folder.

    python bench/report_scale.py [--subjects 50 --guidances 50 --styles 3]   # 2,500 + 7,500 = 10,000 images
                                 [--image-size 64] [--no-thumbnails] [--no-browser]

Builds the folder with the tests' fixture (small PNGs, ``--image-size`` pixels a side; thumbnails made by
the real make_thumbnail, or none with ``--no-thumbnails``: the report then makes them all), then
prints: the time make_thumbnail takes on a full-size 1024x1024 image; write_report's wall time and peak
memory; report.html's size; and, in Debian's chromium driven by Playwright, the time from navigation to a
drawn grid, to a sorted and a filtered table, to the image viewer, and the page's JavaScript heap.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from report_fixtures import build_output_folder

from flux_batch.report import write_report
from flux_batch.report.thumbnails import make_thumbnail

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def thumbnail_cost(folder: Path, repeats: int = 20) -> dict[str, float]:
    """Milliseconds per make_thumbnail on a 1024x1024 noisy image, PNG and JPEG (what FLUX returns)."""
    noise = Image.effect_noise((1024, 1024), 64).convert("RGB")
    out = {}
    for ext in ("png", "jpg", "webp"):
        rel = f"images/bench/full.{ext}"
        (folder / "images/bench").mkdir(parents=True, exist_ok=True)
        noise.save(folder / rel)
        start = time.perf_counter()
        for _ in range(repeats):
            make_thumbnail(folder, rel)
        out[ext] = (time.perf_counter() - start) / repeats * 1000
    return out


def browser_figures(report: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        figures["load to drawn grid (s)"] = time.perf_counter() - start
        figures["grid images in the DOM"] = page.locator("#grid img").count()

        def timed(name: str, action: object) -> None:
            t = time.perf_counter()
            action()  # type: ignore[operator]
            figures[name] = (time.perf_counter() - t) * 1000

        # A big report loads a stage's rows when it is first shown: wait for its grid to be drawn.
        drawn = "() => document.querySelectorAll('#grid .pair').length > 0"  # edit is a chain stage
        timed(
            "switch stage (ms)",
            lambda: (page.click("[data-stage=edit]"), page.wait_for_function(drawn)),
        )
        timed("switch axes (ms)", lambda: page.select_option("#rows-axis", "guidance"))
        counted = "() => /of [\\d,]+ rows/.test(document.getElementById('table-count')?.textContent || '')"
        timed(
            "open table, all rows (ms)",
            lambda: (page.click("#tab-table"), page.wait_for_function(counted)),
        )
        timed("sort table by seed (ms)", lambda: page.click("#jobs th[data-key=seed]"))
        timed("filter to failures (ms)", lambda: page.select_option("#table-status", "failures"))
        timed(
            "open the viewer (ms)",
            lambda: (page.click("#jobs tbody tr"), page.wait_for_selector("#viewer[open]")),
        )
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        metrics = cdp.send("Performance.getMetrics")["metrics"]
        heap = next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize")
        figures["JS heap used (MB)"] = heap / 1e6
        browser.close()
    return figures


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--guidances", type=int, default=50)
    parser.add_argument("--styles", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--image-size", type=int, default=64, help="the images' side, pixels")
    parser.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="a folder whose thumbnails were never made (the report makes them all)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "out"
        print(f"make_thumbnail on 1024x1024 (ms): {thumbnail_cost(Path(tmp) / 'thumbs')}")
        start = time.perf_counter()
        subjects = [f"subject {i}" for i in range(args.subjects)]
        guidances = [str(2 + i / 10) for i in range(args.guidances)]
        styles = [f"style {i}" for i in range(args.styles)]
        fail = (subjects[-1], guidances[-1])
        syn = build_output_folder(
            folder,
            subjects=subjects,
            guidances=guidances,
            styles=styles,
            fail=fail,
            image_size=args.image_size,
            thumbnails=not args.no_thumbnails,
        )
        images = sum(1 for r in syn.rows if r["status"] == "succeeded")
        took = time.perf_counter() - start
        print(f"synthetic folder: {len(syn.rows):,} rows, {images:,} images ({took:.1f} s)")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        report = write_report(folder)
        took = time.perf_counter() - start
        own = _cpu(resource.RUSAGE_SELF) - cpu[0].ru_utime - cpu[0].ru_stime
        workers = _cpu(resource.RUSAGE_CHILDREN) - cpu[1].ru_utime - cpu[1].ru_stime
        print(f"write_report: {took:.2f} s (CPU: {own:.1f} s here, {workers:.1f} s in worker processes)")
        start = time.perf_counter()
        write_report(folder)
        print(f"write_report again (thumbnails and sheets exist): {time.perf_counter() - start:.2f} s")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS: {peak / 1024:.0f} MB (before: {before / 1024:.0f} MB)")
        print(f"report.html: {os.path.getsize(report) / 1e6:.2f} MB")
        for sheet in sorted(folder.glob("grid_*.png")):
            with Image.open(sheet) as image:
                print(f"{sheet.name}: {image.width}x{image.height}, {sheet.stat().st_size / 1e6:.2f} MB")
        if not args.no_browser:
            for name, value in browser_figures(report).items():
                print(f"chromium: {name}: {value:,.1f}")


if __name__ == "__main__":
    main()
