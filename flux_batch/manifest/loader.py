"""``load``: read, validate and parse a manifest, then check its size and every job's input.

Every check that can run does, in one pass, so a file never needs several rounds of ``validate``:

1. YAML problems first (nothing else can be trusted: they are reported alone);
2. every schema error at once. When the only trouble is unknown keys, the rest goes on as their
   did-you-mean hints would fix them (``promt`` read as ``prompt``); otherwise it stops here;
3. every semantic error at once (variables, files, the stage graph);
4. for the stages without errors of their own (and whose upstream stages have none): the job limit,
   counted before anything is expanded, then every job's input, ``where`` filters that match nothing,
   and stages or jobs that would send the very same request.

Each step's issues join the earlier ones; :class:`~flux_batch.errors.ManifestError` carries them all, in
file order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from flux_batch.errors import Issue, ManifestError
from flux_batch.jobs import expand
from flux_batch.jobs.checks import check_inputs, check_sources, duplicate_requests
from flux_batch.manifest.model import Manifest, Stage
from flux_batch.manifest.parse import parse
from flux_batch.manifest.validate import repaired, schema_issues
from flux_batch.manifest.yaml_loader import Document, load_yaml, parse_yaml


def load(path: str | Path, *, max_jobs: int | None = None) -> Manifest:
    """Read and fully validate the manifest at ``path``.

    ``max_jobs`` overrides the manifest's job limit (default 1,000,000). Raises ManifestError with every
    issue found; non-fatal warnings are kept in ``Manifest.warnings``.
    """
    path = Path(path)
    return load_document(load_yaml(path), path, max_jobs=max_jobs)


def loads(text: str | bytes, path: str | Path, *, max_jobs: int | None = None) -> Manifest:
    """Validate a manifest given as YAML (or JSON) text, as if it were the file ``path``: relative paths
    in it (output, data files, images) are taken from ``path``'s folder, and issues name ``path``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return load_document(parse_yaml(raw, str(path)), Path(path), max_jobs=max_jobs)


def load_document(doc: Document, path: Path, *, max_jobs: int | None = None) -> Manifest:
    """The steps after YAML: the schema, the semantic checks, the job limit, every job's input."""
    issues = schema_issues(doc)
    if issues:
        fixed = repaired(doc)
        if fixed is None:
            raise ManifestError(_ordered(doc, issues))
        doc = fixed
    manifest, found, unsound = parse(doc, path, max_jobs=max_jobs)
    issues += found
    sound = dataclasses.replace(manifest, stages=_sound(manifest.stages, unsound))
    try:
        limit = _limit_issue(doc, sound)
        if limit is not None:
            raise ManifestError(_ordered(doc, [*issues, limit]))
        issues += check_inputs(sound, doc) + check_sources(sound, doc) + duplicate_requests(sound, doc)
    except expand.MissingVariableError as exc:
        hint = "an include entry that extends no combination is a job of its own: give it every variable"
        issue = doc.issue(("stages", exc.stage.index, "prompt"), str(exc), hint)
        raise ManifestError(_ordered(doc, [*issues, issue])) from exc
    _raise_if_errors(doc, issues)
    return dataclasses.replace(manifest, warnings=tuple(_ordered(doc, issues)))


def _sound(stages: Iterable[Stage], unsound: set[int] | None) -> tuple[Stage, ...]:
    """The stages whose jobs can be expanded: no error of their own, none in a stage they take from."""
    if unsound is None:
        return ()
    sound: dict[str, Stage] = {}
    for stage in stages:  # in topological order
        if stage.index not in unsound and all(need in sound for need in stage.needs):
            sound[stage.id] = stage
    return tuple(sound.values())


def _ordered(doc: Document, issues: Iterable[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.file != doc.file, i.file, i.line, i.column))


def _raise_if_errors(doc: Document, issues: list[Issue]) -> None:
    if any(i.severity == "error" for i in issues):
        raise ManifestError(_ordered(doc, issues))


def _limit_issue(doc: Document, manifest: Manifest) -> Issue | None:
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
