"""``metadata.parquet``: the succeeded images' rows, typed, for the Hugging Face ``imagefolder`` loader.

``load_dataset("imagefolder", data_dir=OUT)`` reads its rows from the folder's metadata file. A CSV or
JSON Lines file is typed by the loader as it reads, in chunks, from the first chunk: a column empty in the
first 10,000 rows (an upstream image, a second stage's variable) fails the load when later rows fill it,
and a prompt such as ``007``, ``None``, ``nan`` or ``2024-01-01`` comes back as a number, a null or a
timestamp. Parquet carries its schema, so every value loads as written, at any size: text columns are
strings, ``seed``, ``bytes``, ``width``, ``height`` and ``attempts`` integers, ``predict_time`` and
``cost_usd`` floats, each ``input_<name>`` column the type the models' input schemas give it (text when
they disagree), and a missing value is null.

The file is written in row groups as rows stream by (memory stays flat) under a temporary name, fsynced
and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flux_batch.outputs.layout import HEAD_COLUMNS, TAIL_COLUMNS

#: Rows per row group: what the loader reads at a time, and what the writer holds (10,000 took 35 MB more).
ROW_GROUP = 2_000
INT_COLUMNS = frozenset({"seed", "bytes", "width", "height", "attempts"})
FLOAT_COLUMNS = frozenset({"predict_time", "cost_usd"})
_TYPES = {"text": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def input_kind(schemas: Sequence[Mapping[str, Any]]) -> str:
    """``int``, ``float``, ``bool`` or ``text``: the type one input column takes in every model that
    has it (``schemas``, one per model; none known gives text)."""
    kinds = set()
    for schema in schemas:
        kind = schema.get("type")
        kinds.add(kind if isinstance(kind, str) else "other")
    if kinds == {"integer"}:
        return "int"
    if kinds and kinds <= {"integer", "number"}:
        return "float"
    if kinds == {"boolean"}:
        return "bool"
    return "text"


def column_kinds(header: Sequence[str], input_kinds: Mapping[str, str]) -> dict[str, str]:
    """Every column's kind: the fixed ones by name, inputs as given, sweep variables text."""
    fixed = set(HEAD_COLUMNS) | set(TAIL_COLUMNS)
    kinds = {}
    for column in header:
        if column in INT_COLUMNS:
            kinds[column] = "int"
        elif column in FLOAT_COLUMNS:
            kinds[column] = "float"
        elif column in fixed:
            kinds[column] = "text"
        else:
            kinds[column] = input_kinds.get(column, "text")
    return kinds


def typed(value: Any, kind: str) -> Any:
    """``value`` as a value of ``kind`` (None for none, or for a value that is not one)."""
    if value is None:
        return None
    if kind == "text":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (dict, list, tuple)):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        return str(value)
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind == "int":
        return int(value) if float(value).is_integer() else None
    return float(value) if math.isfinite(value) else None


class MetadataWriter:
    """``with MetadataWriter(path, header, input_kinds) as w: w.add(row)...``: streams rows (mappings of
    column to value) into ``path``, replaced only when the block ends without an error."""

    def __init__(self, path: Path, header: Sequence[str], input_kinds: Mapping[str, str]) -> None:
        self.path = path
        self._kinds = column_kinds(header, input_kinds)
        self._schema = pa.schema([(c, _TYPES[k]) for c, k in self._kinds.items()])
        self._tmp = path.with_name(f".{path.name}.tmp")
        self._buffer: dict[str, list[Any]] = {c: [] for c in self._kinds}
        self._pending = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> MetadataWriter:
        self._writer = pq.ParquetWriter(self._tmp, self._schema)
        return self

    def add(self, row: Mapping[str, Any]) -> None:
        for column, kind in self._kinds.items():
            self._buffer[column].append(typed(row.get(column), kind))
        self._pending += 1
        if self._pending >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        assert self._writer is not None
        if self._pending:
            columns = {c: pa.array(v, type=self._schema.field(c).type) for c, v in self._buffer.items()}
            self._writer.write_table(pa.table(columns, schema=self._schema))
        self._buffer = {c: [] for c in self._kinds}
        self._pending = 0

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._writer is not None
        try:
            if kind is None:
                self._flush()
            self._writer.close()
        finally:
            self._writer = None
        if kind is not None:
            self._tmp.unlink(missing_ok=True)
            return
        with self._tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
