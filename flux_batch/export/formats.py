"""The three export formats: how one shard of samples is written, and where its keys can be read back.

* ``webdataset``: ``data/<n>.tar`` (``<key>.<ext>`` the image, ``<key>.json`` the row, ``<key>.txt`` the
  prompt) and ``data/<n>.parquet``, the shard's index (one row per sample, no image bytes), as img2dataset
  writes it and NeMo Curator reads it.
* ``parquet``: ``data/<n>.parquet``, the image embedded as the Hugging Face ``Image`` feature
  (``{"bytes", "path"}``) beside every column, in row groups of :data:`IMAGE_ROW_GROUP` rows.
* ``imagefolder``: ``data/<n>/<key>.<ext>`` and ``data/<n>/metadata.parquet`` (``file_name`` relative to
  its folder). Parquet, not CSV or JSON Lines: ``datasets`` types a text file's columns from its first rows
  and requires every metadata file of a dataset to come out with the same types, which a column empty in
  one shard and filled in another breaks; Parquet carries its types.

Each shard's files are written under ``.partial`` names and renamed in place only once whole, the file a
reader opens first (the tar, the Parquet shard, the folder) last.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flux_batch.errors import StateError, storage_error
from flux_batch.export.files import written, written_dir
from flux_batch.export.shards import shard_name
from flux_batch.export.tarball import ShardTar

DATA_DIR = "data"
#: Rows per row group of a Parquet file holding images: what ``datasets``' ``push_to_hub`` uses for image
#: datasets, so that a reader (or the Hub's viewer) holds about 100 images at a time.
IMAGE_ROW_GROUP = 100
#: Rows per row group of a metadata-only Parquet file.
META_ROW_GROUP = 10_000
_ARROW = {"text": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_HF_DTYPE = {"text": "string", "int": "int64", "float": "float64", "bool": "bool"}
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@dataclass(frozen=True)
class Sample:
    """One image to export: its key, its row (typed values by column) and its file with the size and
    sha256 the table records. Only the bytes of the image being written are ever held."""

    key: str
    ext: str
    row: Mapping[str, Any]
    path: Path
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return f"{self.key}.{self.ext}"

    def read(self) -> bytes:
        """The image's bytes, checked against the recorded sha256."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise storage_error(exc, f"reading {self.path}") from exc
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise StateError(
                f"{self.path}: its bytes no longer match the sha256 the table records; run `flux-batch run` "
                "on the folder to fetch it again, then export again (shards already written are kept)"
            )
        return data


@dataclass(frozen=True)
class Layout:
    """The columns of every row an export writes (``key`` first) and their kinds."""

    kinds: Mapping[str, str]

    def schema(self, *, image: bool = False, file_name: bool = False) -> pa.Schema:
        fields = [pa.field("image", IMAGE_TYPE)] if image else []
        if file_name:
            fields.append(pa.field("file_name", pa.string()))
        fields += [pa.field(c, _ARROW[k]) for c, k in self.kinds.items()]
        features: dict[str, Any] = {"image": {"_type": "Image"}} if image else {}
        if file_name:
            features["file_name"] = {"dtype": "string", "_type": "Value"}
        features.update({c: {"dtype": _HF_DTYPE[k], "_type": "Value"} for c, k in self.kinds.items()})
        hf = json.dumps({"info": {"features": features}}, sort_keys=True, separators=(",", ":"))
        return pa.schema(fields, metadata={"huggingface": hf})

    def json_bytes(self, row: Mapping[str, Any]) -> bytes:
        return json.dumps(
            {c: row.get(c) for c in self.kinds}, ensure_ascii=False, separators=(",", ":")
        ).encode()


def _table(layout: Layout, samples: Sequence[Sample], *, image: bool, file_name: bool) -> pa.Table:
    schema = layout.schema(image=image, file_name=file_name)
    columns: dict[str, list[Any]] = {}
    if image:
        columns["image"] = [{"bytes": s.read(), "path": s.name} for s in samples]
    if file_name:
        columns["file_name"] = [s.name for s in samples]
    for column in layout.kinds:
        columns[column] = [s.row.get(column) for s in samples]
    return pa.table(columns, schema=schema)


def _write_parquet(
    fh: Any, layout: Layout, samples: Sequence[Sample], *, image: bool, file_name: bool
) -> None:
    schema = layout.schema(image=image, file_name=file_name)
    group = IMAGE_ROW_GROUP if image else META_ROW_GROUP
    # Image bytes are compressed already: stored as they are, without a dictionary or statistics.
    plain = [c for c in schema.names if c != "image"]
    with pq.ParquetWriter(
        fh,
        schema,
        compression={"image.bytes": "NONE", "image.path": "SNAPPY", **dict.fromkeys(plain, "SNAPPY")},
        use_dictionary=plain,
        write_statistics=plain,
    ) as writer:
        for start in range(0, len(samples), group):
            part = samples[start : start + group]
            writer.write_table(_table(layout, part, image=image, file_name=file_name), row_group_size=group)


def shard_files(fmt: str, number: int) -> tuple[str, ...]:
    """The shard's files (folders for imagefolder), relative to the export; its key index first."""
    name = shard_name(number)
    if fmt == "webdataset":
        return (f"{DATA_DIR}/{name}.parquet", f"{DATA_DIR}/{name}.tar")
    if fmt == "parquet":
        return (f"{DATA_DIR}/{name}.parquet",)
    return (f"{DATA_DIR}/{name}/metadata.parquet", f"{DATA_DIR}/{name}")


def write_shard(fmt: str, root: Path, number: int, layout: Layout, samples: Sequence[Sample]) -> None:
    """Write shard ``number`` of ``samples`` under ``root``."""
    files = [root / f for f in shard_files(fmt, number)]
    if fmt == "webdataset":
        with written(files[0]) as fh:
            _write_parquet(fh, layout, samples, image=False, file_name=False)
        with written(files[1]) as fh:
            tar = ShardTar(fh)
            for s in samples:
                data = s.read()
                tar.add(s.name, io.BytesIO(data), len(data))
                tar.add_bytes(f"{s.key}.json", layout.json_bytes(s.row))
                tar.add_bytes(f"{s.key}.txt", str(s.row.get("prompt") or "").encode())
            tar.close()
    elif fmt == "parquet":
        with written(files[0]) as fh:
            _write_parquet(fh, layout, samples, image=True, file_name=False)
    else:
        with written_dir(files[1]) as folder:
            for s in samples:
                (folder / s.name).write_bytes(s.read())
            with (folder / "metadata.parquet").open("wb") as fh:
                _write_parquet(fh, layout, samples, image=False, file_name=True)


def read_keys(fmt: str, root: Path, number: int) -> list[str]:
    """The keys of an exported shard, from its index."""
    table = pq.read_table(root / shard_files(fmt, number)[0], columns=["key"])
    return [str(k) for k in table.column("key").to_pylist()]
