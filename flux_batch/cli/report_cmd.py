"""``flux-batch report DIR [--open]``: rebuild an output folder's report.html and contact sheets."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.report import write_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.html and grid_=<stage>.png for an output folder",
        description="Rebuild DIR/report.html (the grid, the table and every image's parameters) and one "
        "DIR/grid_=<stage>.png contact sheet per stage from DIR's manifest.csv, run.json and images. "
        "The runner does this after every run; use this on a copied or older folder.",
    )
    parser.add_argument("out_dir", metavar="DIR", type=Path, help="an output folder of `flux-batch run`")
    parser.add_argument("--open", action="store_true", help="open the report in the default web browser")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.out_dir
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder: give the output folder of a `flux-batch run`")
    report = write_report(out_dir)
    print(f"report: {report}")
    for sheet in sorted(out_dir.glob("grid_*.png")):
        print(f"contact sheet: {sheet}")
    if args.open:
        webbrowser.open(report.resolve().as_uri())
    return 0
