"""Replicate's OpenAPI description as the tests use it: the fixture, with the description's own bugs patched.

``tests/fixtures/replicate-openapi.yaml`` is a trimmed, unpatched copy (its header says where it comes
from). :func:`patched` applies the patches below, each a known bug of the description rather than of the
simulator; docs/simulator.md lists them. :func:`json_schema` turns the OpenAPI 3.0 schemas into JSON Schema
for ``jsonschema``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "replicate-openapi.yaml"
PROBLEM = {
    "type": "object",
    "required": ["detail", "status"],
    "properties": {
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "status": {"type": "integer"},
        "retry_after": {"type": "integer"},
    },
}


@functools.lru_cache(maxsize=1)
def original() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _version_is_one_of_two_overlapping_strings(spec: dict[str, Any]) -> None:
    """``schemas_prediction_response.version`` is ``oneOf: [string, enum: [hidden]]``: ``"hidden"`` matches
    both branches, so the value every official-model prediction has fails ``oneOf``. Any string is meant."""
    prop = spec["components"]["schemas"]["schemas_prediction_response"]["properties"]["version"]
    descriptions = " / ".join(branch.get("description", "") for branch in prop["oneOf"])
    spec["components"]["schemas"]["schemas_prediction_response"]["properties"]["version"] = {
        "type": "string",
        "description": descriptions,
    }


def _error_responses_are_undocumented(spec: dict[str, Any]) -> None:
    """Most operations document only their success: none lists the problem+json 4xx answers the API sends
    (401 bad token, 402 billing, 404 unknown model or id, 413, 422 invalid input or version, 429 throttled;
    Replicate's docs and the reference describe them). Each operation gets a ``4XX`` problem+json answer
    (codes it documents itself keep their own)."""
    for item in spec["paths"].values():
        for operation in item.values():
            operation["responses"].setdefault(
                "4XX",
                {
                    "description": "Client error (problem+json)",
                    "content": {"application/problem+json": {"schema": PROBLEM}},
                },
            )


PATCHES = (_version_is_one_of_two_overlapping_strings, _error_responses_are_undocumented)


@functools.lru_cache(maxsize=1)
def _patched() -> dict[str, Any]:
    spec = copy.deepcopy(original())
    for patch in PATCHES:
        patch(spec)
    return spec


def patched() -> dict[str, Any]:
    """A fresh copy of the patched description (callers may change it)."""
    return copy.deepcopy(_patched())


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes a ``null`` type."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"] if "type" in node else out.get("type")
    return out


@functools.lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    return to_json_schema(_patched())  # type: ignore[no-any-return]
