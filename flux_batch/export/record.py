"""The export's own record, ``.flux-batch-export.json`` at its root: the options it was made with, the
table's columns, and its shards with their counts. A shard is in the record only once its files are in
place, and the record is replaced atomically after each shard: what it lists is complete. An export run
again with the same options continues from it (new shards only); files it does not list are leftovers of
an interrupted export, removed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.export.files import written

RECORD = ".flux-batch-export.json"
VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    number: int
    samples: int
    bytes: int
    by_stage: Mapping[str, int]
    by_model: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "samples": self.samples,
            "bytes": self.bytes,
            "by_stage": dict(sorted(self.by_stage.items())),
            "by_model": dict(sorted(self.by_model.items())),
        }


@dataclass
class Record:
    """What an export holds. ``settings`` are the options and columns that decide a shard's content."""

    settings: Mapping[str, Any]
    shards: list[ShardEntry] = field(default_factory=list)

    @property
    def next_number(self) -> int:
        return self.shards[-1].number + 1 if self.shards else 0

    def totals(self, attr: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for shard in self.shards:
            for key, n in getattr(shard, attr).items():
                out[key] = out.get(key, 0) + n
        return out

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    def save(self, root: Path) -> None:
        data = {
            "version": VERSION,
            "settings": self.settings,
            "shards": [s.to_json() for s in self.shards],
        }
        with written(root / RECORD) as fh:
            fh.write(json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def load(root: Path) -> Record | None:
    """The record of the export at ``root``; None if there is none."""
    path = root / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}")
        shards = [
            ShardEntry(int(s["number"]), int(s["samples"]), int(s["bytes"]), s["by_stage"], s["by_model"])
            for s in data["shards"]
        ]
        return Record(data["settings"], shards)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path}: not an export record this flux-batch can read ({exc}); export to a new --to, or add "
            "--overwrite to export afresh"
        ) from exc
