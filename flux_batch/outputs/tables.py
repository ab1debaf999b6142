"""The run's tables and summary: ``manifest.csv``, ``metadata.parquet`` and ``run.json``.

``manifest.csv`` has a row per output image of every live job (one row for a job without images, with
its status and error); ``metadata.parquet`` the same columns, typed, for downloaded images only, which makes
the folder a Hugging Face ``imagefolder`` dataset (``file_name`` relative to the folder; see
:mod:`flux_batch.outputs.metadata`). Both are streamed from the state store in batches and replaced
atomically (temporary file, fsync, rename), so a reader, or an interrupted run, always sees a complete file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_batch.jobs import FILE_KEY, UPSTREAM_KEY
from flux_batch.jobs.status import PAID, public
from flux_batch.models.catalog import get_model
from flux_batch.outputs.layout import (
    HEAD_COLUMNS,
    INPUT_PREFIX,
    MANIFEST_CSV,
    METADATA_PARQUET,
    OLD_METADATA,
    RUN_JSON,
    TAIL_COLUMNS,
    VAR_PREFIX,
)
from flux_batch.outputs.quality import Tally, parse_flags, with_size_flag
from flux_batch.runner.state.store import JobRow, OutputRow, Store


@dataclass(frozen=True)
class Columns:
    """The header, and which column each sweep variable and input goes to."""

    header: tuple[str, ...]
    var_columns: Mapping[str, str]
    input_columns: Mapping[str, str]


def columns(var_names: Sequence[str], input_names: Sequence[str]) -> Columns:
    """Variables keep their plain name unless it collides with another column (then ``var_<name>``);
    inputs other than prompt and seed become ``input_<name>``."""
    input_columns = {name: f"{INPUT_PREFIX}{name}" for name in input_names if name not in ("prompt", "seed")}
    taken = set(HEAD_COLUMNS) | set(TAIL_COLUMNS) | set(input_columns.values())
    var_columns = {name: (f"{VAR_PREFIX}{name}" if name in taken else name) for name in var_names}
    header = (*HEAD_COLUMNS, *var_columns.values(), *input_columns.values(), *TAIL_COLUMNS)
    return Columns(header, var_columns, input_columns)


def _cell(value: Any) -> Any:
    """A value as manifest.csv writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def table_rows(store: Store, cols: Columns, *, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every row of the tables, in manifest order, as plain values (None where there is none)."""
    pending: list[JobRow] = []
    for row in store.iter_jobs():
        pending.append(row)
        if len(pending) >= batch:
            yield from _rows_of(store, cols, pending)
            pending = []
    if pending:
        yield from _rows_of(store, cols, pending)


def _rows_of(store: Store, cols: Columns, rows: list[JobRow]) -> Iterator[dict[str, Any]]:
    outputs = store.outputs_of([r.id for r in rows] + [n for r in rows for n in r.job.needs])
    for row in rows:
        job = row.job
        base: dict[str, Any] = {
            "job_id": job.id,
            "stage": job.stage,
            "model": job.model,
            "status": public(row.status),
            "prompt": job.prompt,
            "seed": row.seed,
            "prediction_id": row.prediction_id,
            "upstream_job_id": ";".join(job.needs) or None,
            "predict_time": row.predict_time,
            "created_at": row.created_at,
            "completed_at": row.completed_at,
            "attempts": row.attempts,
            "error": row.error,
        }
        for name, column in cols.var_columns.items():
            base[column] = job.vars.get(name)
        for name, column in cols.input_columns.items():
            base[column] = _input_value(job.input.get(name), outputs)
        paid = row.status in PAID and row.cost_usd is not None
        mine = outputs.get(job.id, []) if row.status in PAID else []
        if not mine:
            yield {**base, "cost_usd": row.cost_usd if paid else None}
            continue
        for output in mine:
            yield {
                **base,
                "file_name": output.file_name,
                "sha256": output.sha256,
                "bytes": output.bytes,
                "width": output.width,
                "height": output.height,
                "phash": output.phash,
                "flags": table_flags(output, job.input),
                "cost_usd": round((row.cost_usd or 0.0) / len(mine), 6) if paid else None,
            }


def table_flags(output: OutputRow, inputs: Mapping[str, Any]) -> str | None:
    """The image's flags as the tables show them: those found once it was downloaded (None: not known yet,
    see flux_batch.runner.image_work), and ``wrong_size`` when its size is not what the job asked for."""
    if output.flags is None:
        return None
    return with_size_flag(parse_flags(output.flags), (output.width or 0, output.height or 0), inputs)


def _input_value(value: Any, outputs: Mapping[str, list[OutputRow]]) -> Any:
    """A job's input as the tables show it: an upstream image by its file, a local file by its path."""
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):  # input_images: every one
        return ";".join(str(_input_value(v, outputs)) for v in value)
    if isinstance(value, Mapping) and UPSTREAM_KEY in value:
        index = int(value.get("output", 0))
        found = [o for o in outputs.get(str(value[UPSTREAM_KEY]), []) if o.idx == index]
        return found[0].file_name if found else None
    if isinstance(value, Mapping) and FILE_KEY in value:
        return str(value[FILE_KEY])
    return value


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_tables(
    store: Store, out_dir: Path, tally: Tally | None = None, *, parquet: bool = True
) -> tuple[int, int]:
    """Rewrite manifest.csv and (with ``parquet``) metadata.parquet from one pass over the state; return
    (rows, images). ``tally`` is given each image's flags and hash as it is written (its counts go in the
    summary). Without ``parquet``, pyarrow is not imported: a running run's checkpoints rewrite manifest.csv
    only, and metadata.parquet at the run's end (docs/benchmarks.md, "The run's processes together")."""
    meta = store.get_meta("columns", {"vars": [], "inputs": []})
    cols = columns(meta["vars"], meta["inputs"])
    counts = [0, 0]
    tally = tally if tally is not None else Tally()
    with contextlib.ExitStack() as stack:
        images = None
        if parquet:
            from flux_batch.outputs.metadata import MetadataWriter

            kinds = input_kinds(store, cols)
            images = stack.enter_context(MetadataWriter(out_dir / METADATA_PARQUET, cols.header, kinds))

        def write(fh: Any) -> None:
            writer = csv.DictWriter(fh, fieldnames=cols.header, extrasaction="ignore")
            writer.writeheader()
            for record in table_rows(store, cols):
                writer.writerow({k: _cell(v) for k, v in record.items()})
                counts[0] += 1
                if record["status"] == "succeeded" and record.get("file_name"):
                    if images is not None:
                        images.add(record)
                    counts[1] += 1
                    tally.add(record.get("flags"), record.get("phash"))

        _replace(out_dir / MANIFEST_CSV, write)
    if parquet:
        for old in OLD_METADATA:  # a folder holds one metadata file, or imagefolder refuses to load it
            (out_dir / old).unlink(missing_ok=True)
    return counts[0], counts[1]


def input_kinds(store: Store, cols: Columns) -> dict[str, str]:
    """The metadata type of each ``input_<name>`` column, from the schemas of the run's models."""
    from flux_batch.outputs.metadata import input_kind

    specs = [get_model(name) for name in store.models()]
    if not all(spec.known for spec in specs):  # a model without a schema may send anything
        return {}
    return {
        column: input_kind(
            [spec.inputs[name] for spec in specs if name in spec.inputs and name not in spec.image_inputs]
        )
        for name, column in cols.input_columns.items()
    }


def write_run_json(out_dir: Path, data: Mapping[str, Any]) -> None:
    """Replace run.json atomically."""
    _replace(out_dir / RUN_JSON, lambda fh: json.dump(data, fh, indent=2, ensure_ascii=False, default=str))


def read_run_json(out_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
