"""``load``: read, validate and parse a manifest, then check its size and every job's input.

The order matters for the user: YAML problems first (nothing else can be trusted), then every schema
error at once, then every semantic error at once, then the job limit (before anything is expanded), then
every job's input. Each step raises :class:`~flux_batch.errors.ManifestError` with all its issues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from flux_batch import expand  # a module reference: expand imports manifest.model
from flux_batch.errors import Issue, ManifestError
from flux_batch.manifest.checks import check_inputs
from flux_batch.manifest.model import Manifest
from flux_batch.manifest.parse import parse
from flux_batch.manifest.validate import schema_issues
from flux_batch.manifest.yaml_loader import Document, load_yaml


def load(path: str | Path, *, max_jobs: int | None = None) -> Manifest:
    """Read and fully validate the manifest at ``path``.

    ``max_jobs`` overrides the manifest's job limit (default 1,000,000). Raises ManifestError with every
    issue found; non-fatal warnings are kept in ``Manifest.warnings``.
    """
    path = Path(path)
    doc = load_yaml(path)
    _raise_if_errors(doc, schema_issues(doc))
    manifest, issues = parse(doc, path, max_jobs=max_jobs)
    _raise_if_errors(doc, issues)
    _check_limit(doc, manifest, issues)
    issues = issues + check_inputs(manifest, doc)
    _raise_if_errors(doc, issues)
    return dataclasses.replace(manifest, warnings=tuple(_ordered(doc, issues)))


def _ordered(doc: Document, issues: Iterable[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.file != doc.file, i.file, i.line, i.column))


def _raise_if_errors(doc: Document, issues: list[Issue]) -> None:
    if any(i.severity == "error" for i in issues):
        raise ManifestError(_ordered(doc, issues))


def _check_limit(doc: Document, manifest: Manifest, issues: list[Issue]) -> None:
    jobs, _ = expand.count_jobs_and_images(manifest, limit=manifest.max_jobs)
    total = sum(jobs.values())
    if total <= manifest.max_jobs:
        return
    biggest = max(jobs, key=lambda s: jobs[s])
    index = manifest.stage(biggest).index
    detail = ", ".join(f"{s}: {n:,}" for s, n in jobs.items())
    at = ("max_jobs",) if "max_jobs" in doc.data else ("stages", index)
    issue = doc.issue(
        at,
        f"the manifest expands to more than {manifest.max_jobs:,} jobs ({detail})",
        f"shrink the sweep, or raise the limit with max_jobs: {total} (or --max-jobs {total})",
    )
    _raise_if_errors(doc, [*issues, issue])
