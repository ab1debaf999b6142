"""The models the simulator serves, built from ``schemas/models/*.json`` and the schemas it is given.

Each schema file (and each schema a profile names, ``SimConfig.models``) makes one model: its
``GET /models/{owner}/{name}`` object, one version (whose id is the SHA-256 of the schema's canonical
JSON, so it changes exactly when the schema does, unless the file pins a real id under
``x-version-id``), and that version's ``openapi_schema`` in the form Cog writes it
(``components.schemas.Input`` and ``Output``). Adding a schema file is all it takes to simulate another
model; nothing here names a model.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flux_batch.jobs.ids import canonical_json
from flux_batch.models import catalog

#: When the simulated versions say they were pushed (a fixed instant, so responses are reproducible).
VERSION_CREATED_AT = "2025-01-01T00:00:00.000000Z"
COG_VERSION = "0.16.8"


@dataclass(frozen=True)
class SimulatedModel:
    """One servable model: its spec, its one version id and that version's OpenAPI schema."""

    spec: catalog.ModelSpec
    version_id: str
    openapi_schema: Mapping[str, Any] = field(repr=False)

    @property
    def owner(self) -> str:
        return self.spec.name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.spec.name.split("/", 1)[1]

    def version_json(self) -> dict[str, Any]:
        """The version object of ``GET /models/{owner}/{name}/versions/{id}``."""
        return {
            "id": self.version_id,
            "created_at": VERSION_CREATED_AT,
            "cog_version": COG_VERSION,
            "openapi_schema": self.openapi_schema,
        }

    def model_json(self) -> dict[str, Any]:
        """The model object of ``GET /models/{owner}/{name}``."""
        schema = self.spec.schema or {}
        return {
            "url": f"https://replicate.com/{self.spec.name}",
            "owner": self.owner,
            "name": self.name,
            "description": schema.get("description"),
            "visibility": "public",
            "is_official": True,
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": 0,
            "cover_image_url": None,
            "default_example": None,
            "latest_version": self.version_json(),
        }


def input_schema(spec: catalog.ModelSpec) -> dict[str, Any]:
    """The model's ``Input`` schema as Cog writes it: every property with a ``title`` and ``x-order``.

    Only ``properties`` and ``required`` are taken: the files' cross-field rules (``allOf``/``if``) are
    flux-batch's checks, not part of what Replicate publishes, and OpenAPI 3.0 has no ``if``."""
    schema = spec.schema or {}
    properties = {}
    for order, (key, prop) in enumerate(spec.inputs.items()):
        properties[key] = {"title": key.replace("_", " ").title(), **prop, "x-order": order}
    result: dict[str, Any] = {"type": "object", "title": "Input", "properties": properties}
    if schema.get("required"):
        result["required"] = list(schema["required"])
    return result


def output_schema(spec: catalog.ModelSpec) -> dict[str, Any]:
    url = {"type": "string", "format": "uri"}
    if spec.output == "list":
        return {"type": "array", "items": url, "title": "Output"}
    return {**url, "title": "Output"}


def openapi_schema(spec: catalog.ModelSpec) -> dict[str, Any]:
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {"Input": input_schema(spec), "Output": output_schema(spec)}},
    }


def version_id(spec: catalog.ModelSpec) -> str:
    schema = spec.schema or {}
    pinned = schema.get("x-version-id")
    if isinstance(pinned, str) and catalog.VERSION_ID.match(pinned):
        return pinned
    return hashlib.sha256(canonical_json(schema).encode()).hexdigest()


class Catalog:
    """Lookups by ``owner/name`` and by version id."""

    def __init__(self, specs: Mapping[str, catalog.ModelSpec]) -> None:
        self.by_name = {
            name: SimulatedModel(spec, version_id(spec), openapi_schema(spec))
            for name, spec in specs.items()
            if spec.known
        }
        self.by_version = {m.version_id: m for m in self.by_name.values()}

    def __repr__(self) -> str:
        return f"Catalog({len(self.by_name)} models)"


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """Every model of ``schemas/models/``."""
    return Catalog(catalog.known_models())


def catalog_with(specs: tuple[catalog.ModelSpec, ...]) -> Catalog:
    """Every model of ``schemas/models/`` and ``specs`` (which win over a built-in of the same name)."""
    if not specs:
        return default_catalog()
    return Catalog({**catalog.known_models(), **{spec.name: spec for spec in specs}})


def permissive(name: str) -> catalog.ModelSpec:
    """A model the simulator knows nothing of: it takes any input and makes one image (so a pipeline
    with a model that has no schema can still be tried for free)."""
    schema = {"type": "object", "x-model": name, "title": name, "description": f"{name} (any input)"}
    return catalog.ModelSpec(name, name, None, "url", (), schema)
