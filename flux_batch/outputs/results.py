"""An output folder read back: one record a row of ``manifest.csv`` (an image, or a job without one), with
every column the CSV and ``metadata.parquet`` carry, typed, and ``path``, the image's absolute path.

``flux_batch.results(out_dir)`` returns :class:`Results`; ``to_pandas`` makes the DataFrame a notebook
wants. The rows are read by the report's reader (:mod:`flux_batch.report.data`), so the report, the tables
and the records agree on every value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux_batch.errors import UsageError
from flux_batch.outputs.layout import INPUT_PREFIX
from flux_batch.report.data import Row, RunData, load, var_column

if TYPE_CHECKING:  # pandas is optional: only ``Results.to_pandas`` needs it
    import pandas


@dataclass(frozen=True)
class Results:
    """An output folder's rows, one per image (and one per job without an image), typed as the report
    reads them: ``rows``, ``stages``, ``summary`` (run.json's), :meth:`records` and :meth:`to_pandas`."""

    out_dir: Path
    rows: tuple[Row, ...]
    data: RunData = field(repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    @property
    def summary(self) -> Mapping[str, Any]:
        return self.data.summary

    def records(self) -> list[dict[str, Any]]:
        """One flat dict a row, in manifest.csv's column order: the fixed columns, each sweep variable,
        each input as ``input_<name>``, then the image's (``file_name`` and ``path``, its absolute path,
        empty without an image; ``sha256``, ``bytes``, size, ``phash`` and ``flags``) and the job's."""
        return [self._record(row) for row in self.rows]

    def _record(self, row: Row) -> dict[str, Any]:
        record: dict[str, Any] = {
            "job_id": row.job_id,
            "stage": row.stage,
            "model": row.model,
            "status": row.status,
            "prompt": row.prompt,
            "seed": row.seed,
        }
        record.update({var_column(name, self.data.header): value for name, value in row.vars.items()})
        record.update({f"{INPUT_PREFIX}{k}": v for k, v in row.input.items() if k not in ("prompt", "seed")})
        record.update(
            prediction_id=row.prediction_id,
            upstream_job_id=row.upstream_job_id,
            file_name=row.file_name,
            path=str((self.out_dir / row.file_name).resolve()) if row.file_name else "",
            sha256=row.sha256,
            bytes=row.bytes,
            width=row.width,
            height=row.height,
            phash=row.phash,
            flags=row.flags,
            predict_time=row.predict_time,
            created_at=row.created_at,
            completed_at=row.completed_at,
            attempts=row.attempts,
            cost_usd=row.cost_usd,
            error=row.error,
        )
        return record

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a DataFrame (needs pandas: ``pip install pandas``)."""
        try:
            import pandas
        except ImportError as exc:
            raise UsageError("Results.to_pandas needs pandas: pip install pandas") from exc
        return pandas.DataFrame.from_records(self.records())


def read_results(out_dir: Path) -> Results:
    """``out_dir``'s rows, read whole; UsageError if it is not a flux-batch output folder."""
    data = load(out_dir)
    return Results(data.out_dir, data.rows, data)
