"""``flux-batch export DIR --format webdataset|parquet|imagefolder --to PATH``: an output folder as a
dataset (see docs/datasets.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.export.shards import FORMATS
from flux_batch.outputs.quality import DEDUPE_DISTANCE_DEFAULT

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def byte_size(text: str) -> int:
    """``500MB``, ``1GB``, ``2000000``: a size in bytes (argparse type)."""
    number = text.strip().upper()
    unit = next((u for u in ("GB", "MB", "KB", "B") if number.endswith(u)), "")
    try:
        value = float(number[: len(number) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (write 500MB, 1GB or a number of bytes)"
        ) from None
    return int(value * _UNITS[unit])


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export an output folder as a WebDataset, Parquet or imagefolder dataset",
        description="Write DIR's images and table as a dataset under PATH: WebDataset tar shards with a "
        "Parquet index each, Parquet shards with the images embedded (the Hub's Image feature), or an "
        "imagefolder. The same folder gives the same bytes; run again on the same PATH (while a run goes "
        "on, say) to add only new shards. Bad samples (blank, undecodable, wrong size) are left out unless "
        "--keep-flagged; see docs/datasets.md.",
    )
    parser.add_argument("out_dir", metavar="DIR", type=Path, help="an output folder of `flux-batch run`")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--to", required=True, type=Path, metavar="PATH", help="the export's folder")
    parser.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        help="images a shard (default: 10,000 webdataset and parquet, 5,000 imagefolder; at most 9,999 "
        "imagefolder, the Hub's 10,000 files a folder)",
    )
    parser.add_argument(
        "--shard-bytes",
        type=byte_size,
        metavar="SIZE",
        help="image bytes a shard, such as 500MB (default: 1GB webdataset, 500MB parquet)",
    )
    parser.add_argument(
        "--stage", action="append", default=[], metavar="ID", help="only this stage (repeat for more)"
    )
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="only images of jobs in this status (default: succeeded; repeat for more)",
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="leave out near-duplicates: images whose perceptual hash is within --dedupe-distance bits of "
        "an earlier image's (manifest order)",
    )
    parser.add_argument(
        "--dedupe-distance",
        type=int,
        default=DEDUPE_DISTANCE_DEFAULT,
        metavar="BITS",
        help=f"bits of 64 two near-duplicates' hashes may differ by (default {DEDUPE_DISTANCE_DEFAULT})",
    )
    parser.add_argument(
        "--keep-flagged", action="store_true", help="keep blank, undecodable and wrong-size images"
    )
    parser.add_argument(
        "--license", default="other", metavar="ID", help="the card's licence id on the Hub (default other)"
    )
    parser.add_argument("--license-note", default="", metavar="TEXT", help="the card's licence note")
    parser.add_argument("--quiet", action="store_true", help="print nothing when all went well")
    parser.add_argument(
        "--overwrite", action="store_true", help="export afresh into PATH, replacing an earlier export there"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flux_batch.export import ExportOptions, export

    if not args.out_dir.is_dir():
        raise UsageError(f"{args.out_dir} is not a folder: give the output folder of a `flux-batch run`")
    options = ExportOptions(
        fmt=args.fmt,
        shard_images=args.shard_size,
        shard_bytes=args.shard_bytes,
        stages=tuple(args.stage),
        statuses=tuple(args.status) or ("succeeded",),
        dedupe=args.dedupe,
        distance=args.dedupe_distance,
        keep_flagged=args.keep_flagged,
        license=args.license,
        license_note=args.license_note,
        overwrite=args.overwrite,
    )
    summary = export(args.out_dir, args.to, options)
    if args.quiet:
        return 0
    left = ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in sorted(summary.excluded.items()))
    print(
        f"exported {summary.new_samples:,} images in {_count(summary.new_shards, 'new shard')} to "
        f"{summary.to} ({summary.fmt}: {summary.samples:,} images in {_count(summary.shards, 'shard')} "
        "in all)" + (f"; left out: {left}" if left else "")
    )
    return 0
