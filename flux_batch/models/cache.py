"""The user's cache of fetched model schemas: ``<cache>/flux-batch/models/<owner>/<name>.json``.

``<cache>`` is ``$XDG_CACHE_HOME`` or ``~/.cache`` (``$FLUX_BATCH_CACHE`` replaces the whole
``<cache>/flux-batch`` folder, for tests and shared machines). ``flux-batch models --fetch`` writes
there; every later check of that model's inputs reads it, offline. A file is written whole (temporary
file, then rename), so a reader never sees half of one.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from flux_batch.models.catalog import MODEL_REF, ModelSpec, spec_from_schema


def cache_dir() -> Path:
    """The folder of flux-batch's cache."""
    explicit = os.environ.get("FLUX_BATCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flux-batch"


def schema_path(name: str) -> Path:
    """Where ``owner/name``'s fetched schema lives (ValueError for a malformed name)."""
    match = MODEL_REF.match(name)
    if not match or match["version"]:
        raise ValueError(f"{name!r} is not owner/name")
    return cache_dir() / "models" / match["owner"] / f"{match['name']}.json"


def save(schema: dict[str, Any]) -> Path:
    """Write a fetched schema to the cache; returns its path."""
    path = schema_path(schema["x-model"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    _read.cache_clear()
    return path


def cached_spec(name: str) -> ModelSpec | None:
    """The spec of a fetched model, or None when it was never fetched (or the file is unreadable)."""
    try:
        path = schema_path(name)
    except ValueError:
        return None
    return _read(str(path))


@functools.lru_cache(maxsize=64)
def _read(path: str) -> ModelSpec | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return spec_from_schema(data) if isinstance(data, dict) and "x-model" in data else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_names() -> list[str]:
    """Every cached model, as ``owner/name``."""
    root = cache_dir() / "models"
    if not root.is_dir():
        return []
    return sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.json"))
