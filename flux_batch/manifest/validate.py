"""Checks a parsed manifest against ``schemas/manifest.schema.json`` and locates every error.

Each JSON Schema error becomes an :class:`~flux_batch.errors.Issue` at the line and column where the
offending key or value was written, with a did-you-mean hint for misspelled keys and values. All errors are
returned at once, in file order. When the only trouble is unknown keys, :func:`repaired` gives the
document as the hints would fix it, so that the checks after the schema can run in the same pass.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from flux_batch import resources
from flux_batch.errors import Issue
from flux_batch.manifest.yaml_loader import Document, JsonPath
from flux_batch.models.catalog import closest, known_models, suggest

_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


@functools.lru_cache(maxsize=1)
def manifest_validator() -> jsonschema.protocols.Validator:
    """The compiled validator for the manifest schema (built once)."""
    schema = resources.load_schema("manifest.schema.json")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_issues(doc: Document) -> list[Issue]:
    """Every schema violation in ``doc``, located, deduplicated and sorted by position."""
    issues: dict[tuple[int, int, str, str], Issue] = {}
    for error in manifest_validator().iter_errors(doc.data):
        for issue in _describe(doc, error):
            issues.setdefault((issue.line, issue.column, issue.path, issue.message), issue)
    return sorted(issues.values(), key=lambda i: (i.line, i.column))


def repaired(doc: Document) -> Document | None:
    """``doc`` with every unknown key renamed as its did-you-mean hint says (``promt`` -> ``prompt``), or
    dropped when there is no hint, if that leaves nothing against the schema; else None.

    The checks after the schema (variables, stages, every job's input) then run on what the user most
    likely meant, so one pass reports everything. Positions follow the renamed keys.
    """
    data = copy.deepcopy(doc.data)
    renamed: dict[JsonPath, JsonPath] = {}
    for error in manifest_validator().iter_errors(doc.data):
        if error.validator != "additionalProperties" or not isinstance(error.schema, dict):
            continue
        path = tuple(error.absolute_path)
        node: Any = data
        for part in path:
            node = node[part]
        allowed = [k for k in error.schema.get("properties", {}) if k not in node]
        for key in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
            value = node.pop(key)
            fix = closest(key, allowed)
            if fix is not None:
                node[fix] = value
                allowed.remove(fix)
                old, new = (*path, key), (*path, fix)
                renamed[old] = new
    if next(manifest_validator().iter_errors(data), None) is not None:
        return None

    def moved(where: JsonPath) -> JsonPath:
        for old, new in renamed.items():
            if where[: len(old)] == old:
                return new + where[len(old) :]
        return where

    values = {moved(p): v for p, v in doc.values.items()}
    keys = {moved(p): v for p, v in doc.keys.items()}
    return Document(doc.file, data, values, keys)


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _describe(doc: Document, error: ValidationError) -> Iterable[Issue]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = str(schema.get("x-hint", ""))
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            if allowed:
                yield doc.issue(
                    (*path, key),
                    f"unknown key {key!r}",
                    suggest(key, allowed) or f"allowed here: {', '.join(allowed)}",
                    key=True,
                )
        return
    if error.validator == "propertyNames":
        key = error.instance
        sub = error.schema.get("propertyNames", {}) if isinstance(error.schema, dict) else {}
        sub_hint = _resolve_hint(sub) or hint
        yield doc.issue((*path, key), f"{key!r} is not allowed as a name here", sub_hint, key=True)
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        for issue in _describe(doc, _closest(error)):
            yield issue if issue.hint or not hint else dataclasses.replace(issue, hint=hint)
        return
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        yield doc.issue(path, f"missing required key {missing!r}", hint)
        return
    if error.validator == "type":
        wanted = error.validator_value
        names = wanted if isinstance(wanted, list) else [wanted]
        yield doc.issue(path, f"expected {' or '.join(names)}, got {_kind(error.instance)}", hint)
        return
    if error.validator == "const":
        yield doc.issue(path, f"must be {error.validator_value!r}, not {error.instance!r}", hint)
        return
    if error.validator == "enum":
        choices = ", ".join(repr(v) for v in error.validator_value)
        hint = suggest(error.instance, [str(v) for v in error.validator_value]) or hint
        yield doc.issue(path, f"{error.instance!r} is not one of {choices}", hint)
        return
    if error.validator == "pattern":
        if path and path[-1] == "model" and isinstance(error.instance, str):
            hint = _model_hint(error.instance) or hint
        yield doc.issue(path, f"{error.instance!r} is not valid here", hint)
        return
    if error.validator in ("minProperties", "maxProperties") and isinstance(error.instance, dict):
        options = sorted(schema.get("properties", {}))
        if options:
            yield doc.issue(path, f"give exactly one of: {', '.join(options)}", hint)
            return
    if error.validator == "minItems" and error.instance == []:
        yield doc.issue(path, "must not be empty", hint)
        return
    yield doc.issue(path, error.message, hint)


def _model_hint(written: str) -> str:
    names = list(known_models())
    tail = written.split("/")[-1].split(":")[0].lower()
    exact = [n for n in names if n.split("/")[1] == tail]
    return f"did you mean {exact[0]!r}?" if exact else suggest(written, names)


def _resolve_hint(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "x-hint" in schema:
        return str(schema["x-hint"])
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        target = resources.load_schema("manifest.schema.json")["$defs"].get(ref.split("/")[-1], {})
        return str(target.get("x-hint", ""))
    return ""


def _closest(error: ValidationError) -> ValidationError:
    """The alternative of an ``anyOf`` that fits the value's type best; a plain type error otherwise."""
    fitting = [
        e for e in error.context or () if e.validator != "type" or e.absolute_path != error.absolute_path
    ]
    if fitting:
        # prefer errors from a branch of the right type: they are deeper than the anyOf itself
        deeper = [e for e in fitting if len(e.absolute_path) > len(error.absolute_path)]
        return best_match(deeper or fitting)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = str(schema.get("x-hint", "") or schema.get("description", ""))
    return ValidationError(
        f"{_kind(error.instance)} is not allowed here",
        validator="x-anyof",
        path=list(error.absolute_path),
        instance=error.instance,
        schema={"x-hint": hint},
    )
