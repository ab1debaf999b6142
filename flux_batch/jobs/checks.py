"""Checks of the jobs a manifest expands to, before anything is submitted (step 4 of reading a manifest:
:func:`checked`; steps 1-3 are :mod:`flux_batch.manifest.loader`'s).

- the job limit, counted before anything is expanded (:func:`limit_issue`);

- :func:`check_inputs`: every job's resolved input against its model's schema. Every job is checked,
  streaming. Validation results are cached by the input's *shape*: the input with the prompt and a
  derived seed left out, because the model schemas only ask of those that the prompt is a non-empty string
  and the seed an integer (checked per job, cheaply). Problems are grouped, so one bad axis value gives one
  line naming how many jobs it affects and the sweep values of the first.
- :func:`check_sources`: a ``where`` filter of an upstream stage's images that matches nothing (a value
  that is not swept, ``"3"`` where the sweep has ``3``) would silently empty its stage.
- :func:`duplicate_requests`: two jobs that send the very same request (model, input, seed) have one job
  id, so one would silently stand for the other and a stage could vanish from the outputs. Only a fixed
  seed (or ``same_seed_across``) can make that happen: derived seeds differ by stage and by sweep values.

A run records in its folder that its manifest passed these checks (:func:`check_record`); resuming the
folder with the very same manifest (:func:`flux_batch.jobs.fingerprint.checks_fingerprint`: the same
jobs, model schemas, job limit and flux-batch) trusts that record instead of checking every job again,
and shows the warnings it kept.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

from flux_batch.errors import Issue, ManifestError
from flux_batch.jobs import expand
from flux_batch.jobs.fingerprint import checks_fingerprint
from flux_batch.jobs.ids import canonical_json
from flux_batch.manifest.loader import Read
from flux_batch.manifest.model import MODEL_VAR, ImageSource, Manifest, Stage
from flux_batch.manifest.sweep import matches
from flux_batch.manifest.template import format_value
from flux_batch.manifest.yaml_loader import Document, JsonPath
from flux_batch.models import catalog

_CACHE_LIMIT = 200_000
_EXAMPLE_VARS = 6


def _stands_in(spec: catalog.ModelSpec, name: str, expected: dict[str, Any]) -> bool:
    """True when the schema's only rule for ``name`` is ``expected`` and no cross-field rule names it."""
    rule = {k: v for k, v in spec.inputs.get(name, {}).items() if k not in ("description", "title")}
    cross = json.dumps((spec.schema or {}).get("allOf", []))
    return rule == expected and f'"{name}"' not in cross


def checked(read: Read, *, earlier: Any = None) -> Manifest:
    """The manifest once its sound stages' jobs pass every check; ManifestError with every issue (steps 1
    to 4) otherwise. Warnings are kept in ``Manifest.warnings``. ``earlier``: the :func:`check_record` of
    the folder the manifest is to run in; when it is this very manifest's, the jobs are not checked again.
    """
    doc, manifest = read.doc, read.manifest
    issues = list(read.issues)
    if not any(i.severity == "error" for i in issues):
        kept = earlier_warnings(manifest, earlier)
        if kept is not None:
            return dataclasses.replace(
                manifest, warnings=tuple(dict.fromkeys(read.ordered([*issues, *kept])))
            )
    sound = dataclasses.replace(manifest, stages=read.sound)
    try:
        limit = limit_issue(doc, sound)
        if limit is not None:
            raise ManifestError(read.ordered([*issues, limit]))
        issues += check_inputs(sound, doc) + check_sources(sound, doc) + duplicate_requests(sound, doc)
    except expand.MissingVariableError as exc:
        hint = "an include entry that extends no combination is a job of its own: give it every variable"
        issue = doc.issue(("stages", exc.stage.index, "prompt"), str(exc), hint)
        raise ManifestError(read.ordered([*issues, issue])) from exc
    if any(i.severity == "error" for i in issues):
        raise ManifestError(read.ordered(issues))
    return dataclasses.replace(manifest, warnings=tuple(read.ordered(issues)))


def check_record(manifest: Manifest) -> dict[str, Any]:
    """What a folder keeps of a checked manifest: the fingerprint of what its checks depend on, and the
    warnings they gave (as JSON)."""
    return {
        "key": checks_fingerprint(manifest),
        "warnings": [dataclasses.asdict(w) for w in manifest.warnings],
    }


def earlier_warnings(manifest: Manifest, record: Any) -> list[Issue] | None:
    """The warnings kept by ``record`` (a :func:`check_record`, as read back from a folder) when it is of
    this very manifest; None when it is not, or is not a record (a damaged or older folder)."""
    if not isinstance(record, Mapping) or not isinstance(record.get("warnings"), list):
        return None
    if record.get("key") != checks_fingerprint(manifest):
        return None
    kept = []
    for fields in record["warnings"]:
        try:
            issue = Issue(**fields)
        except TypeError:
            return None
        texts = (issue.file, issue.path, issue.message, issue.hint, issue.severity)
        if not (isinstance(issue.line, int) and isinstance(issue.column, int)) or not all(
            isinstance(text, str) for text in texts
        ):
            return None
        kept.append(issue)
    return kept


def limit_issue(doc: Document, manifest: Manifest) -> Issue | None:
    """An error when the manifest expands to more than its ``max_jobs``, located where to raise it."""
    jobs, _ = expand.count_jobs_and_images(manifest, limit=manifest.max_jobs)
    total = sum(jobs.values())
    if total <= manifest.max_jobs:
        return None
    biggest = max(jobs, key=lambda s: jobs[s])
    index = manifest.stage(biggest).index
    detail = ", ".join(f"{s}: {n:,}" for s, n in jobs.items())
    at = ("max_jobs",) if "max_jobs" in doc.data else ("stages", index)
    return doc.issue(
        at,
        f"the manifest expands to more than {manifest.max_jobs:,} jobs ({detail})",
        f"shrink the sweep, or raise the limit with max_jobs: {total} (or --max-jobs {total})",
    )


def check_inputs(manifest: Manifest, doc: Document) -> list[Issue]:
    """Errors and warnings for every stage's job inputs, each job against its own model (unknown models
    pass unchecked); with a model axis, a warning for each input left out of a model's jobs."""
    issues: list[Issue] = []
    for stage in manifest.stages:
        if stage.model_varies or manifest.spec_for(stage.id).known:
            issues.extend(_check_stage(manifest, stage, doc))
    return issues


class _ModelCheck:
    """One model's checks within a stage: its spec and which inputs can be checked cheaply."""

    def __init__(self, spec: catalog.ModelSpec) -> None:
        self.spec = spec
        self.prompt_free = _stands_in(spec, "prompt", {"type": "string", "minLength": 1})
        self.seed_free = _stands_in(spec, "seed", {"type": "integer"})
        self.left_out: dict[str, int] = {}  # input the stage set for some of its jobs -> how many


def _check_stage(manifest: Manifest, stage: Stage, doc: Document) -> list[Issue]:
    checks: dict[Any, _ModelCheck] = {}
    cache: dict[Any, list[catalog.InputProblem]] = {}
    found: dict[tuple[str, str, str, str], list[Any]] = {}
    renames = expand.reference_renames(manifest, stage)
    sourced = {s.input for s in stage.sources}
    for vars, combo, input, _ in expand.rows(manifest, stage, full=False):
        ref = combo.get(MODEL_VAR) if stage.model_varies else None
        check = checks.get(ref)
        if check is None:
            check = checks[ref] = _ModelCheck(manifest.spec(stage.job_model(combo)[0]))
        if not check.spec.known:
            continue
        moved = renames.get(ref, {})
        if stage.model_varies:
            set_here = (stage.own_inputs & set(stage.input)) | {n for n in stage.input_vars if n in combo}
            for name in (set_here | sourced) - set(check.spec.inputs) - set(moved):
                check.left_out[name] = check.left_out.get(name, 0) + 1
        several = _several_for_one(check.spec, moved, input)
        if several is not None:
            input = {**input, several[1]: input[several[1]][0]}  # reported here, not as a type error
            found.setdefault(several[0], [0, vars])[0] += 1
        prompt = input.get("prompt")
        skip_prompt = check.prompt_free and type(prompt) is str and prompt != ""
        skip_seed = check.seed_free and type(input.get("seed")) is int
        try:
            key: Any = (
                ref,
                *(
                    (k, v.__class__, None if isinstance(v, Mapping) else v)
                    for k, v in input.items()
                    if not ((k == "prompt" and skip_prompt) or (k == "seed" and skip_seed))
                ),
            )
            hash(key)
        except TypeError:
            key = repr((ref, sorted(input.items())))
        problems = cache.get(key)
        if problems is None:
            probe = dict(input)
            if skip_prompt:
                probe["prompt"] = "x"
            if skip_seed:
                probe["seed"] = 0
            problems = catalog.check_input(check.spec, probe)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = problems
        for p in problems:
            entry = found.get((p.path, p.message, p.hint, p.severity))
            if entry is None:
                found[(p.path, p.message, p.hint, p.severity)] = [1, vars]
            else:
                entry[0] += 1
    issues = [_issue(doc, manifest, stage, *k, count, vars) for k, (count, vars) in found.items()]
    if stage.model_varies:
        issues.extend(_left_out(doc, stage, list(checks.values())))
    return issues


def _several_for_one(
    spec: catalog.ModelSpec, moved: Mapping[str, tuple[str, bool]], input: Mapping[str, Any]
) -> tuple[tuple[str, str, str, str], str] | None:
    """The problem (as a ``found`` key) and the input name, when the stage's several reference images went
    to this model's one-image input (see :func:`flux_batch.jobs.expand.reference_renames`)."""
    for name, (target, to_list) in moved.items():
        value = input.get(target)
        if not to_list and isinstance(value, list) and len(value) > 1:
            message = (
                f"{spec.name} takes one image ({target!r}), but {name!r} gives {len(value)} to each of "
                "its jobs"
            )
            hint = (
                "group_by more variables, so that each job gets one image, or give the one-image models "
                "a stage of their own"
            )
            return (name, message, hint, "error"), target
    return None


def _left_out(doc: Document, stage: Stage, checks: list[_ModelCheck]) -> Iterator[Issue]:
    """A warning for each input the stage sets for jobs of a model that does not take it (another of
    its models does): it is left out of those jobs, never sent to be refused."""
    taken = {n for c in checks if c.spec.known for n in c.spec.inputs}
    for check in checks:
        for name, count in sorted(check.left_out.items()):
            if name not in taken:
                continue  # no model takes it: check_input reports it as an error
            where = stage.origins.get(name, ("stages", stage.index, "input", name))
            yield doc.issue(
                where,
                f"{check.spec.name} has no input {name!r}: it is left out of {count} job(s) of that model",
                "to set an input for some models only, write include: [{model: owner/name, "
                f"{name}: ...}}] or use cases",
                severity="warning",
            )


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


def _shown(vars: Mapping[str, Any]) -> str:
    return (
        ", ".join(f"{k}={format_value(v)}" for k, v in list(vars.items())[:_EXAMPLE_VARS]) or "no variables"
    )


# -- where filters ---------------------------------------------------------------------------------------


def check_sources(manifest: Manifest, doc: Document) -> list[Issue]:
    """An error for every ``where`` value no upstream job has, and every ``where`` nothing matches."""
    issues: list[Issue] = []
    for stage in manifest.stages:
        for source in stage.sources:
            if source.where:
                issues.extend(_check_where(manifest, stage, source, doc))
    return issues


def _check_where(manifest: Manifest, stage: Stage, source: ImageSource, doc: Document) -> list[Issue]:
    upstream = manifest.stage(source.stage)
    seen: dict[str, set[Any]] = {key: set() for key in source.where}
    matched = False
    for vars, _, _, _ in expand.rows(manifest, upstream, full=False):
        for key, values in seen.items():
            if key in vars:
                values.add(vars[key])
        matched = matched or matches(vars, source.where)
    at: JsonPath = ("stages", stage.index, "input", source.input, "where")
    issues: list[Issue] = []
    for key, wanted in source.where.items():
        listed = isinstance(wanted, (list, tuple))
        for i, value in enumerate(wanted if listed else [wanted]):
            if value in seen[key]:
                continue
            same_text = [v for v in seen[key] if format_value(v) == format_value(value)]
            if same_text:
                hint = f"its value is {_yaml(same_text[0])}: write {_yaml(same_text[0])}, not {_yaml(value)}"
            else:
                known = sorted(seen[key], key=repr)
                more = ", ..." if len(known) > 8 else ""
                hint = f"its values: {', '.join(_yaml(v) for v in known[:8])}{more}" if known else ""
            issues.append(
                doc.issue(
                    (*at, key, i) if listed else (*at, key),
                    f"no job of stage {source.stage!r} has {key} = {_yaml(value)}: this filter keeps none of "
                    "its images",
                    hint,
                )
            )
    if not issues and not matched:
        issues.append(
            doc.issue(
                at,
                f"no job of stage {source.stage!r} has all these values together: stage {stage.id!r} would "
                "have no jobs",
                "each value is there, but never in one job (excluded, or from different cases?)",
            )
        )
    return issues


def _yaml(value: Any) -> str:
    """A value as it would be written in the manifest (strings quoted when they look like a number)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return format_value(value)


# -- the same request twice ------------------------------------------------------------------------------


def duplicate_requests(manifest: Manifest, doc: Document) -> list[Issue]:
    """An error for each stage that has jobs sending the very request of another job (of its own stage or
    an earlier one): they would be one job, and one of them would be missing from the outputs."""
    at_risk = [
        s for s in manifest.stages if "seed" in s.input or "seed" in s.input_vars or s.same_seed_across
    ]
    groups: dict[tuple[str, str | None], list[Stage]] = {}
    for stage in at_risk:
        groups.setdefault((stage.model, stage.version), []).append(stage)
    issues: list[Issue] = []
    for stages in groups.values():
        seen: set[int] = set()  # hashes of the requests so far: a million jobs in tens of MB
        # stage -> request hash -> [how many of its jobs repeat it, the vars of the first]
        clashes: dict[str, dict[int, list[Any]]] = {}
        for stage in stages:
            for vars, request in _requests(manifest, stage):
                key = hash(request)
                if key in seen:
                    clashes.setdefault(stage.id, {}).setdefault(key, [0, vars])[0] += 1
                seen.add(key)
        if clashes:
            issues.extend(_clashes(manifest, doc, stages, clashes))
    return issues


def _requests(manifest: Manifest, stage: Stage) -> Iterator[tuple[Mapping[str, Any], str]]:
    """``(vars, the request as canonical JSON)`` for each job of ``stage``, the model and version aside.

    In check mode (cheap: no ids, no derived seeds) where it can be told apart: a derived seed is
    stood for by what it is derived from. A chain stage's upstream images are only known by their ids.
    """
    if stage.sources:
        for job in expand.expand_stage(manifest, stage):
            yield job.vars, job.id
        return
    for vars, combo, input, ups in expand.rows(manifest, stage, full=False):
        request = canonical_json([stage.job_model(combo), input])
        if "seed" not in input:
            request += canonical_json([stage.id, expand.seed_key(stage, combo, ups)])
        yield vars, request


def _clashes(
    manifest: Manifest,
    doc: Document,
    stages: list[Stage],
    clashes: Mapping[str, Mapping[int, list[Any]]],
) -> Iterator[Issue]:
    """One issue per stage and earlier stage it clashes with, naming the first job of each pair."""
    wanted = {key for by_key in clashes.values() for key in by_key}
    owner: dict[int, tuple[str, Mapping[str, Any]]] = {}  # a second pass, for the clashing requests only
    for stage in stages:
        for vars, request in _requests(manifest, stage):
            key = hash(request)
            if key in wanted and key not in owner:
                owner[key] = (stage.id, vars)
    for stage in stages:
        pairs: dict[str, list[Any]] = {}
        for key, (count, vars) in clashes.get(stage.id, {}).items():
            earlier, other = owner[key]
            pairs.setdefault(earlier, [0, vars, other])[0] += count
        for earlier, (count, vars, other) in pairs.items():
            yield _clash(doc, stage, earlier, count, vars, other)


def _clash(
    doc: Document, stage: Stage, earlier: str, count: int, vars: Mapping[str, Any], other: Mapping[str, Any]
) -> Issue:
    jobs = f"{count} jobs of stage {stage.id!r} send" if count > 1 else f"a job of stage {stage.id!r} sends"
    if earlier == stage.id:
        message = (
            f"{jobs} exactly the request of another of its jobs (the same model, "
            f"input and seed; first: {_shown(vars)}, the same as {_shown(other)}): flux-batch runs a request "
            "once, so "
            "one image would stand for both"
        )
        hint = (
            "with a fixed seed, repeat and variables that change neither the prompt nor an input make the "
            "same image: leave seed out (each job then derives its own), or drop the variable"
        )
    else:
        message = (
            f"{jobs} exactly the request of a job of stage {earlier!r} (the same "
            f"model, input and seed; first: {_shown(vars)}): flux-batch runs a request once, so stage "
            f"{stage.id!r} would be missing from the outputs"
        )
        hint = "give the stages different inputs or seeds (leave seed out: each stage then derives its own)"
    return doc.issue(("stages", stage.index, "id"), message, hint)
