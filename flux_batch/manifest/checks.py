"""Checks every job's resolved input against its model's schema, before anything is submitted.

Every job is checked, streaming. Validation results are cached by the input's *shape*: the input with
the prompt and a derived seed left out, because the model schemas only ask of those that the prompt is a
non-empty string and the seed an integer (checked per job, cheaply). Problems are grouped, so one bad
axis value gives one line naming how many jobs it affects and the sweep values of the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flux_batch import expand, models  # expand as a module reference: expand imports manifest.model
from flux_batch.errors import Issue
from flux_batch.manifest.model import Manifest, Stage
from flux_batch.manifest.yaml_loader import Document, JsonPath
from flux_batch.template import format_value

_CACHE_LIMIT = 200_000
_EXAMPLE_VARS = 6


def _stands_in(spec: models.ModelSpec, name: str, expected: dict[str, Any]) -> bool:
    """True when the schema's only rule for ``name`` is ``expected`` and no cross-field rule names it."""
    rule = {k: v for k, v in spec.inputs.get(name, {}).items() if k not in ("description", "title")}
    cross = json.dumps((spec.schema or {}).get("allOf", []))
    return rule == expected and f'"{name}"' not in cross


def check_inputs(manifest: Manifest, doc: Document) -> list[Issue]:
    """Errors and warnings for every stage's job inputs (unknown models pass unchecked)."""
    issues: list[Issue] = []
    for stage in manifest.stages:
        spec = manifest.spec_for(stage.id)
        if spec.known:
            issues.extend(_check_stage(manifest, stage, spec, doc))
    return issues


def _check_stage(manifest: Manifest, stage: Stage, spec: models.ModelSpec, doc: Document) -> list[Issue]:
    prompt_free = _stands_in(spec, "prompt", {"type": "string", "minLength": 1})
    seed_free = _stands_in(spec, "seed", {"type": "integer"})
    cache: dict[Any, list[models.InputProblem]] = {}
    found: dict[tuple[str, str, str, str], list[Any]] = {}
    for vars, _, input, _ in expand.rows(manifest, stage, full=False):
        prompt = input.get("prompt")
        skip_prompt = prompt_free and type(prompt) is str and prompt != ""
        skip_seed = seed_free and type(input.get("seed")) is int
        try:
            key: Any = tuple(
                (k, v.__class__, None if isinstance(v, Mapping) else v)
                for k, v in input.items()
                if not ((k == "prompt" and skip_prompt) or (k == "seed" and skip_seed))
            )
            hash(key)
        except TypeError:
            key = repr(sorted(input.items()))
        problems = cache.get(key)
        if problems is None:
            probe = dict(input)
            if skip_prompt:
                probe["prompt"] = "x"
            if skip_seed:
                probe["seed"] = 0
            problems = models.check_input(spec, probe)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = problems
        for p in problems:
            entry = found.get((p.path, p.message, p.hint, p.severity))
            if entry is None:
                found[(p.path, p.message, p.hint, p.severity)] = [1, vars]
            else:
                entry[0] += 1
    return [_issue(doc, manifest, stage, *k, count, vars) for k, (count, vars) in found.items()]


def _issue(
    doc: Document,
    manifest: Manifest,
    stage: Stage,
    name: str,
    message: str,
    hint: str,
    severity: str,
    count: int,
    vars: Mapping[str, Any],
) -> Issue:
    at: JsonPath = ("stages", stage.index)
    raw_input = doc.data["stages"][stage.index].get("input", {})
    key = False
    if name in stage.origins:
        where = stage.origins[name]
    elif name in raw_input:
        where, key = (*at, "input", name), "has no input" in message
    elif name in manifest.defaults:
        where, key = ("defaults", name), "has no input" in message
    elif name == "prompt" and stage.prompt is not None:
        where = (*at, "prompt")
    else:
        where = (*at, "model") if name else at
    if vars:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in list(vars.items())[:_EXAMPLE_VARS])
        message += f" (in {count} jobs, first: {shown})" if count > 1 else f" (job: {shown})"
    return doc.issue(where, message, hint, key=key, severity=severity)
