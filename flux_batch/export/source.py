"""An output folder's rows, as an export reads them: the table's own rows, typed as ``metadata.parquet``
types them, streamed from the state in manifest order through a read-only snapshot (safe beside a
running run: what is done is exported, what is not yet is left for the next export)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flux_batch.errors import UsageError
from flux_batch.outputs.metadata import column_kinds, typed
from flux_batch.outputs.tables import columns, input_kinds, read_run_json, table_rows
from flux_batch.runner.state.store import STATE_FILE, Store

#: The table's ``file_name`` (where the image is in the output folder) is written under this name: in an
#: imagefolder export ``file_name`` is the image's name beside its metadata.
SOURCE_PATH = "source_path"


@dataclass(frozen=True)
class Source:
    """A folder's table: its column kinds (``key`` first) and how to stream its rows."""

    folder: Path
    kinds: Mapping[str, str]
    name: str
    manifest_text: str

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row of the table, typed, with ``file_name`` as :data:`SOURCE_PATH`."""
        store = Store.reader(self.folder)
        try:
            with store.snapshot():
                meta = store.get_meta("columns", {"vars": [], "inputs": []})
                cols = columns(meta["vars"], meta["inputs"])
                for row in table_rows(store, cols):
                    out = {c: typed(row.get(c), k) for c, k in self.kinds.items() if c != SOURCE_PATH}
                    out[SOURCE_PATH] = row.get("file_name")
                    yield out
        finally:
            store.close()


def open_source(folder: Path) -> Source:
    """The folder's table; UsageError if ``folder`` is no flux-batch output folder."""
    if not (folder / STATE_FILE).is_file():
        raise UsageError(
            f"{folder}: no {STATE_FILE} here: not a flux-batch output folder (give the --out of a run)"
        )
    store = Store.reader(folder)
    try:
        meta = store.get_meta("columns", {"vars": [], "inputs": []})
        cols = columns(meta["vars"], meta["inputs"])
        kinds = column_kinds(cols.header, input_kinds(store, cols))
    finally:
        store.close()
    out = {"key": "text"}
    for column, kind in kinds.items():
        out[SOURCE_PATH if column == "file_name" else column] = kind
    run = read_run_json(folder) or {}
    manifest = run.get("manifest") if isinstance(run.get("manifest"), dict) else {}
    document = manifest.get("document") if isinstance(manifest, dict) else None
    name = document.get("name") if isinstance(document, dict) else None
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True) if document else ""
    return Source(folder, out, str(name or folder.name), text)
