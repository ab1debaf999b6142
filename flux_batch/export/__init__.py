"""Datasets from an output folder: WebDataset tar shards, Parquet with the images embedded, or an
imagefolder, byte-identical on every export of the same folder, streamed, and added to shard by shard
while a run goes on; with bad samples left out and near-duplicates dropped on request.

    source    the folder's table rows (read-only, beside a running run)
    quality   perceptual hashes and bad-sample flags;  dedupe  near-duplicates by hash distance
    keys      sample keys;  shards  shard planning;  tarball  reproducible tar headers
    formats   one shard of each format;  files  whole-or-nothing files;  record  what an export holds
    card      the dataset card (README.md);  exporter  export() over all of them
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportOptions", "ExportSummary", "export"]


def __getattr__(name: str) -> Any:
    # The pure modules (card, keys, shards) import without pyarrow and the state code behind export().
    if name in __all__:
        from flux_batch.export import exporter

        return getattr(exporter, name)
    raise AttributeError(name)
