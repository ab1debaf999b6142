"""``flux-batch refine DIR --picks FILE``: the report's picks become a new manifest
(flux_batch.report.refine)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from flux_batch.errors import ManifestError, UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="write a manifest that makes the images picked in a report again (other model, size, seeds)",
        description="Read the picks exported from DIR's report (Picks > Export) and write a manifest that "
        "makes those images again: the same prompts and seeds, on --model, with --set inputs, with --seeds "
        "seeds each. Inputs the model lacks are left out (and listed). The manifest is checked before it is "
        "written.",
    )
    parser.add_argument("out_dir", metavar="DIR", type=Path, help="the output folder the picks come from")
    parser.add_argument("--picks", required=True, type=Path, metavar="FILE", help="the exported picks file")
    parser.add_argument(
        "--model", metavar="OWNER/NAME", help="the model to run them on (default: each its own)"
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="set a model input for every job (YAML value; repeat; KEY= leaves it out), e.g. resolution=2",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="seeds per pick, the original first"
    )
    parser.add_argument(
        "--out-manifest", type=Path, metavar="PATH", help="where to write it (default DIR/refine.yaml)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flux_batch.api import load
    from flux_batch.report import refine
    from flux_batch.report.data import Folder

    out_dir: Path = args.out_dir
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder: give the output folder the picks come from")
    folder = Folder(out_dir)
    rows = refine.picked_rows(folder, refine.read_picks(args.picks))
    target: Path = args.out_manifest or out_dir / "refine.yaml"
    refined = refine.refine_manifest(
        rows,
        out_dir=out_dir,
        manifest_dir=target.parent,
        run_name=folder.name,
        model=args.model,
        sets=refine.parse_sets(args.sets),
        seeds=args.seeds,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.yaml")
    try:
        tmp.write_text(refined.text, encoding="utf-8")
        try:
            manifest = load(tmp)
        except ManifestError as exc:  # e.g. a --set value the model refuses: nothing is written
            issues = [replace(i, file=str(target)) for i in exc.issues]
            raise ManifestError(issues) from exc
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for note in (*refined.notes, *(w.message for w in manifest.warnings)):
        print(f"note: {note}")
    print(f"refine: {target} ({refined.picks} pick(s), {refined.jobs} job(s))")
    print(f"next: flux-batch plan {target}   then   flux-batch run {target}")
    return 0
