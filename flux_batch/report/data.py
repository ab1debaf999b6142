"""Reads an output folder's ``manifest.csv`` and ``run.json`` into plain data for the report.

Every CSV cell is a string; the model inputs (``input_*`` columns) are turned back into the types of the
model's input schema (integers, numbers, booleans), so the report shows and reproduces the exact request.
Sweep variables stay the strings they were written as: they are labels, and their order comes from
:func:`axis_values`. An empty cell means "none".
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.jobs.status import UNSUCCESSFUL
from flux_batch.models import catalog
from flux_batch.outputs.layout import (
    HEAD_COLUMNS,
    IMAGES_DIR,
    INPUT_PREFIX,
    MANIFEST_CSV,
    RUN_JSON,
    TAIL_COLUMNS,
    VAR_PREFIX,
)
from flux_batch.outputs.safepath import inside
from flux_batch.report.thumbnails import thumb_path_for


@dataclass(frozen=True)
class StageInfo:
    """One stage as ``run.json`` describes it."""

    id: str
    model: str
    needs: tuple[str, ...] = ()
    vars: tuple[str, ...] = ()
    product_axes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """One row of ``manifest.csv``: an output image, or a job that has none (failed, unfinished).

    ``input`` is the job's exact model input (prompt and seed included) with schema types restored;
    image inputs hold a path relative to the output folder (an upstream image or a local file) or a URL.
    """

    job_id: str
    stage: str
    model: str
    status: str
    prompt: str
    seed: int | None
    vars: Mapping[str, str]
    input: Mapping[str, Any]
    image_inputs: Mapping[str, str] = field(default_factory=dict)
    upstream_job_id: str = ""
    file_name: str = ""
    thumb: str = ""
    sha256: str = ""
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    predict_time: float | None = None
    cost_usd: float | None = None
    attempts: int | None = None
    prediction_id: str = ""
    created_at: str = ""
    completed_at: str = ""
    error: str = ""
    phash: str = ""
    flags: str = ""

    @property
    def failed(self) -> bool:
        return self.status in UNSUCCESSFUL


@dataclass(frozen=True)
class RunData:
    """Everything the report shows: the stages, every row, the run summary and the raw ``run.json``."""

    out_dir: Path
    stages: tuple[StageInfo, ...]
    rows: tuple[Row, ...]
    summary: Mapping[str, Any]
    run: Mapping[str, Any]
    #: manifest.csv's header: a sweep variable whose name another column has is ``var_<name>`` there.
    header: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        document = self.run.get("manifest", {}).get("document", {})
        return str(document.get("name") or self.out_dir.name)

    def stage_rows(self, stage: str) -> list[Row]:
        return [r for r in self.rows if r.stage == stage]


class Folder:
    """An output folder opened for reading: its run.json and manifest.csv's header; :meth:`rows` streams
    the rows (never all in memory), so a report of 100,000 images reads them in one pass."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / MANIFEST_CSV
        if not self.csv_path.is_file():
            raise UsageError(
                f"{out_dir} has no {MANIFEST_CSV}: is it a flux-batch output folder? (see `flux-batch run`)"
            )
        self.run = _load_run_json(self.out_dir / RUN_JSON)
        with self._unreadable_as_usage_error(), open(self.csv_path, encoding="utf-8", newline="") as f:
            self.header = tuple(next(csv.reader(f), ()))
        self._stages = {s.id: s for s in _described_stages(self.run)}
        # Without run.json, every column between the fixed ones and the inputs is a sweep variable.
        self._middle = tuple(
            c
            for c in self.header
            if c not in HEAD_COLUMNS and c not in TAIL_COLUMNS and not c.startswith(INPUT_PREFIX)
        )
        self._columns = _Columns.of(
            self.header, tuple(self._stages.values()), self.out_dir, _manifest_dir(self.run)
        )

    @property
    def stages(self) -> tuple[StageInfo, ...]:
        """The stages run.json describes, then any other the rows read so far have named."""
        return tuple(self._stages.values())

    def stage(self, stage_id: str) -> StageInfo:
        return self._stages[stage_id]

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.run.get("summary") or {})

    @property
    def name(self) -> str:
        document = self.run.get("manifest", {}).get("document", {})
        return str(document.get("name") or self.out_dir.name)

    def rows(self) -> Iterator[Row]:
        """Every row of manifest.csv in order, except a repeat of a row already read (same job and file:
        older versions could write one twice)."""
        return (self.row(raw) for raw in self.raw_rows())

    def raw_rows(self) -> Iterator[dict[str, str]]:
        """The rows of :meth:`rows` as manifest.csv has them (strings), each with ``"vars"`` of its
        stage's sweep variables: cheap to look at before making a :class:`Row` with :meth:`row`."""
        seen: set[tuple[str, str]] = set()
        with self._unreadable_as_usage_error(), open(self.csv_path, encoding="utf-8", newline="") as f:
            for raw in csv.DictReader(f):
                key = (raw.get("job_id") or "", raw.get("file_name") or "")
                if key in seen:
                    continue
                seen.add(key)
                stage = raw.get("stage") or ""
                if stage not in self._stages:
                    info = StageInfo(stage, raw.get("model", ""), vars=self._middle)
                    self._stages[stage] = info
                    self._columns = self._columns.with_stage(info)
                yield raw

    def vars_of(self, raw: Mapping[str, str]) -> dict[str, str]:
        """A raw row's sweep values."""
        return {v: raw.get(column, "") for v, column in self._columns.vars[raw["stage"]]}

    def row(self, raw: Mapping[str, str]) -> Row:
        return _row(raw, self._columns)

    @contextmanager
    def _unreadable_as_usage_error(self) -> Iterator[None]:
        try:
            yield
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(
                f"{self.csv_path} cannot be read ({exc}); run the pipeline again to rewrite it"
            ) from exc


def load(out_dir: Path) -> RunData:
    """Read ``out_dir``'s manifest.csv and run.json whole; UsageError if it is not a flux-batch output
    folder. (The report streams the rows instead: :class:`Folder`.)"""
    folder = Folder(out_dir)
    rows = tuple(folder.rows())
    return RunData(folder.out_dir, folder.stages, rows, folder.summary, folder.run, folder.header)


def _load_run_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}  # a run interrupted before it wrote run.json: the CSV alone still makes a report
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read ({exc}); rerun the pipeline to rewrite it") from exc
    return data if isinstance(data, dict) else {}


def _described_stages(run: Mapping[str, Any]) -> list[StageInfo]:
    return [
        StageInfo(
            id=str(s["id"]),
            model=str(s.get("model", "")),
            needs=tuple(s.get("needs") or ()),
            vars=tuple(s.get("vars") or ()),
            product_axes=tuple(s.get("product_axes") or ()),
        )
        for s in run.get("stages") or ()
    ]


def _manifest_dir(run: Mapping[str, Any]) -> Path | None:
    path = run.get("manifest", {}).get("path")
    return Path(path).parent if path else None


def var_column(name: str, header: Sequence[str]) -> str:
    """The CSV column of sweep variable ``name``: its plain name, or ``var_<name>`` if that collided."""
    prefixed = VAR_PREFIX + name
    return prefixed if prefixed in header else name


@dataclass(frozen=True)
class _Columns:
    """Which CSV column holds what: worked out once from the header, used for every row."""

    stages: Mapping[str, StageInfo]
    vars: Mapping[str, tuple[tuple[str, str], ...]]  # stage id -> (variable, column)
    inputs: tuple[tuple[str, str], ...]  # (column, input name)
    out_dir: Path
    manifest_dir: Path | None
    header: tuple[str, ...]

    @classmethod
    def of(
        cls, header: Sequence[str], stages: Sequence[StageInfo], out_dir: Path, manifest_dir: Path | None
    ) -> _Columns:
        var_columns = {s.id: tuple((v, var_column(v, header)) for v in s.vars) for s in stages}
        taken = {column for pairs in var_columns.values() for _, column in pairs}
        inputs = tuple(
            (c, c[len(INPUT_PREFIX) :]) for c in header if c.startswith(INPUT_PREFIX) and c not in taken
        )
        return cls({s.id: s for s in stages}, var_columns, inputs, out_dir, manifest_dir, tuple(header))

    def with_stage(self, stage: StageInfo) -> _Columns:
        """These columns, knowing one more stage (one that run.json did not describe)."""
        return _Columns.of(self.header, (*self.stages.values(), stage), self.out_dir, self.manifest_dir)


def _row(raw: Mapping[str, str], columns: _Columns) -> Row:
    stage = columns.stages[raw["stage"]]
    spec = catalog.get_model(raw.get("model") or stage.model)
    input: dict[str, Any] = {}
    if raw.get("prompt"):
        input["prompt"] = raw["prompt"]
    seed = _int(raw.get("seed", ""))
    if seed is not None:
        input["seed"] = seed
    image_inputs: dict[str, str] = {}
    for column, name in columns.inputs:
        if not raw.get(column):
            continue
        if name in spec.image_inputs:
            image_inputs[name] = _image_path(raw[column], columns.out_dir, columns.manifest_dir)
            input[name] = image_inputs[name]
        else:
            input[name] = coerce(raw[column], spec.inputs.get(name, {}))
    file_name = raw.get("file_name", "")
    if file_name and inside(columns.out_dir, file_name) is None:
        file_name = ""  # a tampered CSV: never read or write outside the folder through it
    return Row(
        job_id=raw["job_id"],
        stage=raw["stage"],
        model=raw.get("model", ""),
        status=raw.get("status", ""),
        prompt=raw.get("prompt", ""),
        seed=seed,
        vars={v: raw.get(column, "") for v, column in columns.vars[stage.id]},
        input=input,
        image_inputs=image_inputs,
        upstream_job_id=raw.get("upstream_job_id", ""),
        file_name=file_name,
        thumb=thumb_path_for(file_name) if file_name else "",
        sha256=raw.get("sha256", ""),
        bytes=_int(raw.get("bytes", "")),
        width=_int(raw.get("width", "")),
        height=_int(raw.get("height", "")),
        predict_time=_float(raw.get("predict_time", "")),
        cost_usd=_float(raw.get("cost_usd", "")),
        attempts=_int(raw.get("attempts", "")),
        prediction_id=raw.get("prediction_id", ""),
        created_at=raw.get("created_at", ""),
        completed_at=raw.get("completed_at", ""),
        error=raw.get("error", ""),
        phash=raw.get("phash", ""),
        flags=raw.get("flags", ""),
    )


def _image_path(value: str, out_dir: Path, manifest_dir: Path | None) -> str:
    """An image input as a path relative to the output folder (or the URL it is)."""
    if "://" in value or value.startswith("data:") or value.startswith(f"{IMAGES_DIR}/"):
        return value  # a URL, or an upstream stage's image: already relative to the output folder
    if manifest_dir is None or os.path.isabs(value):
        return value
    # A local file named by the manifest: its path is relative to the manifest's folder.
    return Path(os.path.relpath(manifest_dir / value, out_dir)).as_posix()


def coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """A CSV cell back to the type its input schema gives (the text itself if it does not fit)."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "boolean" in kinds and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "integer" in kinds and (value := _int(text)) is not None:
        return value
    if "number" in kinds and (number := _float(text)) is not None:
        return int(number) if number.is_integer() and "." not in text else number
    if any(k in ("array", "object") for k in kinds):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def axis_values(rows: Iterable[Row], var: str) -> list[str]:
    """The distinct values of sweep variable ``var``: numerically sorted if all are numbers, otherwise in
    the order they first appear (the manifest's order, as expansion writes rows in it)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.vars.get(var, ""), None)
    return in_display_order(seen)


def in_display_order(values_seen: Iterable[str]) -> list[str]:
    """Distinct values as first seen, sorted numerically instead if all are numbers."""
    values = list(dict.fromkeys(values_seen))
    numbers = {v: _float(v) for v in values}
    if all(n is not None for n in numbers.values()):
        return sorted(values, key=lambda v: numbers[v] or 0.0)
    return values
