"""A manifest's ``schemas:``: model schema files it names, by ``owner/name``.

    schemas:
      someone/my-flux-lora: schemas/my-flux-lora.json

A file may hold flux-batch's own form (as in ``schemas/models/``), a saved ``GET /models/{owner}/{name}``
answer, or a bare ``Input`` schema (see :mod:`flux_batch.models.schema_import`). Its models are then checked
like the built-in ones; a price comes from the file's ``x-price`` or the manifest's ``prices:``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from flux_batch.manifest import sweep
from flux_batch.models import catalog
from flux_batch.models.schema_import import SchemaImportError, as_model_schema


class _Reporter(Protocol):
    base: Path

    def error(self, path: tuple[Any, ...], message: str, hint: str = "", *, key: bool = False) -> None: ...


def load_schema_files(parser: _Reporter, written: Mapping[str, str]) -> dict[str, catalog.ModelSpec]:
    """The specs of the files ``written`` names; each unreadable one is an error at its line."""
    specs: dict[str, catalog.ModelSpec] = {}
    for model, path in written.items():
        where = ("schemas", model)
        try:
            with sweep.open_regular(parser.base / path, path, binary=False) as f:
                document = json.load(f)
            schema = as_model_schema(document, model)
            catalog.check_schema(schema)
        except FileNotFoundError:
            parser.error(where, f"file not found: {path}", "paths are relative to the manifest's folder")
        except OSError as exc:
            parser.error(where, f"cannot read {path}: {exc.strerror or exc}")
        except ValueError as exc:  # JSONDecodeError and SchemaImportError are ValueErrors
            hint = "" if isinstance(exc, SchemaImportError) else "the file must be JSON"
            parser.error(where, f"{path} is not a model schema: {exc}", hint)
        else:
            specs[model] = catalog.spec_from_schema(schema)
    return specs
