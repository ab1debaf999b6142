"""Turning a model's published schema into flux-batch's model schema (pure).

Replicate's ``GET /models/{owner}/{name}`` answer carries ``latest_version.openapi_schema``, in which
``components.schemas.Input`` is the input schema Cog wrote: properties with ``title`` and ``x-order``, and
enums as ``allOf: [{"$ref": "#/components/schemas/<name>"}]``. :func:`from_model_json` resolves those,
keeps the rules a check needs, and adds flux-batch's ``x-`` keys: ``x-model``, ``x-version-id``,
``x-output`` (from the ``Output`` schema), ``x-image-inputs`` (inputs of ``format: uri``, or lists of
them). A price is not published by the API: set it with ``prices:`` in the manifest.

:func:`as_model_schema` also takes a manifest's schema file in any of three forms: flux-batch's own
(with ``x-model``), a saved ``GET /models`` answer, or a bare ``Input`` schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The keys of a Cog property that say what a value may be (the rest is presentation).
_RULES = (
    "type", "enum", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "pattern", "format", "items", "minItems", "maxItems",
    "description",
)  # fmt: skip


class SchemaImportError(ValueError):
    """The document is not a model schema flux-batch can read."""


def from_model_json(model: Mapping[str, Any], *, source: str = "") -> dict[str, Any]:
    """flux-batch's schema for a ``GET /models/{owner}/{name}`` answer (SchemaImportError if it has none)."""
    owner, name = model.get("owner"), model.get("name")
    version = model.get("latest_version")
    if not isinstance(owner, str) or not isinstance(name, str) or not isinstance(version, Mapping):
        raise SchemaImportError("the answer has no owner, name and latest_version")
    openapi = version.get("openapi_schema")
    if not isinstance(openapi, Mapping):
        raise SchemaImportError(f"{owner}/{name}'s latest version has no openapi_schema")
    schema = from_openapi(openapi, f"{owner}/{name}")
    if isinstance(version.get("id"), str):
        schema["x-version-id"] = version["id"]
    described = str(model.get("description") or "").strip()
    fetched = f"Fetched from {source}." if source else ""
    schema["description"] = " ".join(p for p in (described, fetched) if p)
    return schema


def from_openapi(openapi: Mapping[str, Any], model: str) -> dict[str, Any]:
    """flux-batch's schema from a Cog OpenAPI document (``components.schemas.Input`` and ``Output``)."""
    components = openapi.get("components", {}).get("schemas", {})
    if not isinstance(components, Mapping) or not isinstance(components.get("Input"), Mapping):
        raise SchemaImportError(f"{model}'s openapi_schema has no components.schemas.Input")
    schema = from_input(components["Input"], model, components)
    output = components.get("Output", {})
    schema["x-output"] = "list" if isinstance(output, Mapping) and output.get("type") == "array" else "url"
    return schema


def from_input(
    input: Mapping[str, Any], model: str, components: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """flux-batch's schema from a bare ``Input`` schema."""
    raw = input.get("properties")
    if not isinstance(raw, Mapping) or not raw:
        raise SchemaImportError(f"the input schema of {model} has no properties")
    ordered = sorted(
        raw.items(), key=lambda kv: kv[1].get("x-order", 1 << 30) if isinstance(kv[1], Mapping) else 0
    )
    properties = {name: _property(prop, components or {}) for name, prop in ordered}
    images = [n for n, p in properties.items() if _is_image(p)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": model,
        "x-model": model,
        "x-output": "url",
        "x-image-inputs": images,
        "type": "object",
        "properties": properties,
        "required": [r for r in input.get("required", []) if r in properties],
        "additionalProperties": False,
    }


def _property(prop: Any, components: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(prop, Mapping):
        return {}
    merged = dict(prop)
    for part in prop.get("allOf", ()):  # Cog writes an enum as a reference to a component
        ref = part.get("$ref", "") if isinstance(part, Mapping) else ""
        target = components.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/components/schemas/") else None
        if isinstance(target, Mapping):
            merged = {**target, **{k: v for k, v in merged.items() if k != "allOf"}}
    return {k: merged[k] for k in _RULES if k in merged}


def _is_image(prop: Mapping[str, Any]) -> bool:
    if prop.get("format") == "uri":
        return True
    items = prop.get("items")
    return prop.get("type") == "array" and isinstance(items, Mapping) and items.get("format") == "uri"


def as_model_schema(document: Any, model: str) -> dict[str, Any]:
    """flux-batch's schema for ``model`` from a schema file's content, in any of the three forms."""
    if not isinstance(document, Mapping):
        raise SchemaImportError("a model schema file must hold a JSON object")
    if "x-model" in document:
        return {**document, "x-model": model}
    if "latest_version" in document:
        return {**from_model_json(document), "x-model": model, "title": model}
    if "components" in document:
        return from_openapi(document, model)
    return from_input(document, model)
