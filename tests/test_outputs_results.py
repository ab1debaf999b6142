"""Reading an output folder back (flux_batch.results): one record a row, with every column manifest.csv and
metadata.parquet carry."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import flux_batch
from flux_batch.testing import simulate


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("results")
    manifest = flux_batch.loads(
        {
            "version": 1,
            "name": "cats",
            "stages": [
                {
                    "id": "cat",
                    "model": "black-forest-labs/flux-schnell",
                    "prompt": "a {color} cat, {flags}",
                    "input": {"megapixels": "0.25", "num_outputs": 2},
                    # "flags" is also a column: the CSV calls the variable var_flags, and so do the records
                    "matrix": {"color": ["red", "blue"], "flags": ["spotted"]},
                }
            ],
        },
        base_dir=base,
    )
    return simulate(manifest).out_dir


def test_records_carry_every_column_of_the_csv_with_its_values(finished: Path) -> None:
    with open(finished / "manifest.csv", encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    records = flux_batch.results(finished).records()
    assert len(records) == len(table) == 4
    for record, row in zip(records, table, strict=True):
        assert set(row) <= set(record), set(row) - set(record)
        assert {k: "" if record[k] is None else str(record[k]) for k in row} == row
        assert record["path"] == str((finished / row["file_name"]).resolve())
    # The quality columns: every image has its perceptual hash; flags are '' when none was found.
    assert all(len(r["phash"]) == 16 for r in records) and {r["flags"] for r in records} == {""}
    assert all(len(r["sha256"]) == 64 and r["bytes"] > 0 for r in records)
    assert {r["var_flags"] for r in records} == {"spotted"}


def test_the_dataframe_has_the_parquet_tables_columns(finished: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    parquet = pandas.read_parquet(finished / "metadata.parquet")
    frame = flux_batch.results(finished).to_pandas()
    assert set(parquet.columns) <= set(frame.columns), set(parquet.columns) - set(frame.columns)
    assert list(frame["phash"]) == list(parquet["phash"]) and list(frame["sha256"]) == list(parquet["sha256"])
