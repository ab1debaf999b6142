"""``export(folder, to, options)``: an output folder as a WebDataset, Parquet or imagefolder dataset.

The rows stream from the folder's table in manifest order; each is kept or left out (another stage or
status, no image, a bad-sample flag, a near-duplicate), and the kept ones are packed into shards as they
come (:mod:`flux_batch.export.shards`), each written whole before it gets its final name, then recorded
(:mod:`flux_batch.export.record`). The same folder and options give the same bytes. Run again on the same
``to``, an export skips the samples it already holds and adds new shards: while a run goes on, each export
adds what finished since the last one.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.export.card import CardFacts, card_text
from flux_batch.export.dedupe import NearDuplicates
from flux_batch.export.files import remove_partials, written
from flux_batch.export.formats import DATA_DIR, Layout, Sample, read_keys, shard_files, write_shard
from flux_batch.export.keys import KeySet, extension, sample_key
from flux_batch.export.record import RECORD, Record, ShardEntry, load
from flux_batch.export.shards import FORMATS, MAX_IMAGES, limits_for, plan
from flux_batch.export.source import SOURCE_PATH, Source, open_source
from flux_batch.outputs import quality
from flux_batch.outputs.safepath import inside

CARD = "README.md"
#: Why a sample was left out, as the summary and the card count it.
NEAR_DUPLICATE = "near_duplicate"
MISSING = "missing_file"


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how. ``keep_flagged`` keeps samples with bad-sample flags (left out by default)."""

    fmt: str
    shard_images: int | None = None
    shard_bytes: int | None = None
    stages: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("succeeded",)
    dedupe: bool = False
    distance: int = quality.DEDUPE_DISTANCE_DEFAULT
    keep_flagged: bool = False
    license: str = "other"
    license_note: str = ""
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise UsageError(f"unknown export format {self.fmt!r}: one of {', '.join(FORMATS)}")
        cap = MAX_IMAGES[self.fmt]
        if self.shard_images is not None and not 1 <= self.shard_images <= cap:
            raise UsageError(f"--shard-size must be between 1 and {cap:,} for {self.fmt}")
        if self.shard_bytes is not None and self.shard_bytes < 1:
            raise UsageError("--shard-bytes must be positive")
        if not 0 <= self.distance <= 32:
            raise UsageError("--dedupe-distance must be between 0 and 32 bits")

    def flags(self) -> str:
        """The command-line flags that shaped the export's content (no paths: the card names them)."""
        parts = [f"--format {self.fmt}"]
        parts += [f"--shard-size {self.shard_images}"] if self.shard_images else []
        parts += [f"--shard-bytes {self.shard_bytes}"] if self.shard_bytes else []
        parts += [f"--stage {s}" for s in self.stages]
        parts += [f"--status {s}" for s in self.statuses if self.statuses != ("succeeded",)]
        parts += [f"--dedupe --dedupe-distance {self.distance}"] if self.dedupe else []
        parts += ["--keep-flagged"] if self.keep_flagged else []
        return " ".join(parts)


@dataclass(frozen=True)
class ExportSummary:
    """What an export did: shards and samples written now, the totals it holds, and what it left out."""

    to: Path
    fmt: str
    new_shards: int
    new_samples: int
    shards: int
    samples: int
    excluded: Mapping[str, int] = field(default_factory=dict)


def _settings(options: ExportOptions, kinds: Mapping[str, str]) -> dict[str, Any]:
    limits = limits_for(options.fmt, options.shard_images, options.shard_bytes)
    return {
        "format": options.fmt,
        "shard_images": limits.images,
        "shard_bytes": limits.bytes,
        "stages": sorted(options.stages),
        "statuses": sorted(options.statuses),
        "dedupe_distance": options.distance if options.dedupe else None,
        "keep_flagged": options.keep_flagged,
        "columns": dict(kinds),
    }


def _prepare(to: Path, settings: Mapping[str, Any], overwrite: bool) -> Record:
    """The record to continue from (a fresh one if none), once leftovers are gone."""
    record = None if overwrite else load(to)
    if record is None and to.exists() and any(to.iterdir()):
        if not (to / RECORD).exists():
            raise UsageError(f"{to} is not empty and holds no flux-batch export: give an empty or new --to")
        for name in (DATA_DIR, CARD, RECORD):  # --overwrite: only what an export writes
            path = to / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    if record is not None and dict(record.settings) != dict(settings):
        changed = sorted(k for k in settings if record.settings.get(k) != settings[k])
        raise UsageError(
            f"{to} holds an export made with other settings ({', '.join(changed)} differ; the table's "
            "columns change when the manifest gains a variable or input): add --overwrite to export "
            "afresh, or give another --to"
        )
    record = record or Record(settings)
    to.mkdir(parents=True, exist_ok=True)
    remove_partials(to)
    fmt = settings["format"]
    listed = {f for shard in record.shards for f in shard_files(fmt, shard.number)}
    data = to / DATA_DIR
    for path in sorted(data.iterdir()) if data.exists() else []:
        rel = f"{DATA_DIR}/{path.name}"
        if rel not in listed:  # renamed in place by an export interrupted before it recorded the shard
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return record


def _inputs(row: Mapping[str, Any]) -> dict[str, Any]:
    return {c[len("input_") :]: v for c, v in row.items() if c.startswith("input_")}


def _flags(row: Mapping[str, Any], path: Path) -> tuple[tuple[str, ...], str | None]:
    """The row's flags and perceptual hash: from the table, or computed from the file when the table has
    none (a folder from before flux-batch recorded them)."""
    phash = row.get("phash")
    if phash is not None:
        return quality.parse_flags(row.get("flags")), str(phash)
    try:
        data = path.read_bytes()
    except OSError:
        return (quality.UNDECODABLE,), None
    found = quality.inspect_image(data, _inputs(row))
    return found.flags, found.phash


def _samples(
    source: Source, options: ExportOptions, exported: KeySet, excluded: Counter[str]
) -> Iterator[Sample]:
    near = NearDuplicates(options.distance) if options.dedupe else None
    for row in source.rows():
        file_name = row.get(SOURCE_PATH)
        if not file_name or row.get("status") not in options.statuses:
            continue
        if options.stages and row.get("stage") not in options.stages:
            continue
        key = sample_key(file_name)
        path = inside(source.folder, file_name)
        if key in exported:
            if near is not None:
                phash = _flags(row, path)[1] if path else None
                if phash:
                    near.seen(phash)
            continue
        if path is None or not path.is_file() or row.get("sha256") is None:
            excluded[MISSING] += 1
            continue
        flags, phash = _flags(row, path)
        if flags and not options.keep_flagged:
            for flag in flags:
                excluded[flag] += 1
            continue
        if near is not None and phash and near.seen(phash):
            excluded[NEAR_DUPLICATE] += 1
            continue
        size, sha256 = int(row["bytes"]), str(row["sha256"])
        found = {"phash": phash, "flags": ";".join(flags)} if row.get("phash") is None else {}
        yield Sample(key, extension(file_name), {**row, **found, "key": key}, path, size, sha256)


def export(
    folder: Path,
    to: Path,
    options: ExportOptions,
    *,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Export ``folder`` to ``to``; ``progress(n)`` is told each shard's sample count as it is written."""
    source = open_source(folder)
    layout = Layout(source.kinds)
    settings = _settings(options, source.kinds)
    record = _prepare(to, settings, options.overwrite)
    exported = KeySet(k for shard in record.shards for k in read_keys(options.fmt, to, shard.number))
    excluded: Counter[str] = Counter()
    limits = limits_for(options.fmt, options.shard_images, options.shard_bytes)
    new_shards = new_samples = 0
    for number, samples in plan(
        _samples(source, options, exported, excluded), lambda s: s.size, limits, start=record.next_number
    ):
        write_shard(options.fmt, to, number, layout, samples)
        record.shards.append(
            ShardEntry(
                number,
                len(samples),
                sum(s.size for s in samples),
                Counter(str(s.row.get("stage")) for s in samples),
                Counter(str(s.row.get("model")) for s in samples),
            )
        )
        record.save(to)
        new_shards += 1
        new_samples += len(samples)
        if progress:
            progress(len(samples))
    facts = CardFacts(
        name=source.name,
        fmt=options.fmt,
        images=record.samples,
        shards=len(record.shards),
        by_stage=record.totals("by_stage"),
        by_model=record.totals("by_model"),
        excluded=dict(excluded),
        license=options.license,
        license_note=options.license_note,
        manifest_text=source.manifest_text,
        options=f"DIR {options.flags()} --to PATH",
    )
    with written(to / CARD) as fh:
        fh.write(card_text(facts).encode())
    total = len(record.shards)
    return ExportSummary(to, options.fmt, new_shards, new_samples, total, record.samples, dict(excluded))
