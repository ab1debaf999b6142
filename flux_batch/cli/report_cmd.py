"""``flux-batch report DIR [--open]``: rebuild an output folder's report.html and contact sheets."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.report import Layout, write_report
from flux_batch.report.data import Folder


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
    layout = parser.add_argument_group(
        "layout",
        "the variables on each stage's grid (any sweep variable, `model` too); kept for the next reports",
    )
    layout.add_argument("--rows", metavar="VAR", help="the variable laid down the rows")
    layout.add_argument("--cols", metavar="VAR", help="the variable laid across the columns")
    layout.add_argument(
        "--group", metavar="VAR", help="a third axis: one grid, and one contact sheet, per value of VAR"
    )
    layout.add_argument(
        "--default-layout", action="store_true", help="forget a kept layout: each stage's default"
    )
    parser.add_argument(
        "--compare", metavar="OTHER_DIR", type=Path,
        help="show OTHER_DIR's images beside this folder's, for the same stage and variables",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.out_dir
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder: give the output folder of a `flux-batch run`")
    layout = Layout(args.rows, args.cols, args.group)
    given = [v for v in (args.rows, args.cols, args.group) if v]
    if len(set(given)) < len(given):
        raise UsageError("--rows, --cols and --group each need a variable of their own")
    asked = args.default_layout or layout != Layout()
    if layout != Layout():
        _check_variables(out_dir, layout)
    if args.compare is not None and not (args.compare / "manifest.csv").is_file():
        raise UsageError(
            f"--compare {args.compare}: not an output folder of `flux-batch run` (no manifest.csv)"
        )
    report = write_report(out_dir, layout=layout if asked else None, save=asked, compare=args.compare)
    print(f"report: {report}")
    for sheet in sorted(out_dir.glob("grid_*.png")):
        print(f"contact sheet: {sheet}")
    if args.open:
        webbrowser.open(report.resolve().as_uri())
    return 0


def _check_variables(out_dir: Path, layout: Layout) -> None:
    """Each variable named must be one of some stage's: a typo is an error with a did-you-mean."""
    from flux_batch.models.catalog import suggest

    folder = Folder(out_dir)
    names = list(dict.fromkeys(v for stage in folder.stages for v in stage.vars))
    for option, var in (("--rows", layout.rows), ("--cols", layout.cols), ("--group", layout.group)):
        if var and var not in names:
            hint = suggest(var, names) or "variables: " + (", ".join(names) or "none")
            raise UsageError(f"{option} {var}: no stage of {out_dir} has that variable ({hint})")
