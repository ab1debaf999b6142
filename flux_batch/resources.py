"""Locates the JSON Schema files, in a source checkout (editable install) or inside a built wheel."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def schemas_dir() -> Path:
    """The folder holding ``manifest.schema.json`` and ``models/``.

    A wheel carries a copy as ``flux_batch/_schemas``; a source checkout has the top-level ``schemas/``.
    """
    for candidate in (_PACKAGE_DIR / "_schemas", _PACKAGE_DIR.parent / "schemas"):
        if (candidate / "models").is_dir():
            return candidate
    raise FileNotFoundError(
        "flux-batch cannot find its schemas/ folder; reinstall the package (pip install flux-batch)"
    )


@functools.cache
def load_schema(relative: str) -> dict[str, Any]:
    """Parse one schema file, e.g. ``"manifest.schema.json"`` or ``"models/flux-pro.json"``."""
    with open(schemas_dir() / relative, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
