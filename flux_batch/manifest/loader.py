"""``read``: a manifest file (or text) read, validated against the schema and parsed, issues gathered.

Every check that can run does, in one pass, so a file never needs several rounds of ``validate``:

1. YAML problems first (nothing else can be trusted: they are reported alone);
2. every schema error at once. When the only trouble is unknown keys, the rest goes on as their
   did-you-mean hints would fix them (``promt`` read as ``prompt``); otherwise it stops here;
3. every semantic error at once (variables, files, the stage graph);
4. then, in :func:`flux_batch.jobs.checks.checked`, for the stages without errors of their own (and whose
   upstream stages have none): the job limit, counted before anything is expanded, then every job's
   input, ``where`` filters that match nothing, and stages or jobs that would send the very same request.

Steps 1-3 are the manifest's own; step 4 needs the jobs, so it lives with them, and this package never
imports expansion (which imports the manifest's model). ``flux_batch.load`` runs all four.
Each step's issues join the earlier ones; :class:`~flux_batch.errors.ManifestError` carries them all, in
file order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flux_batch.errors import Issue, ManifestError
from flux_batch.manifest.model import Manifest, Stage
from flux_batch.manifest.parse import parse
from flux_batch.manifest.validate import repaired, schema_issues
from flux_batch.manifest.yaml_loader import Document, load_yaml, parse_yaml


@dataclass(frozen=True)
class Read:
    """A manifest after steps 1-3: its document, the parsed manifest, the issues so far, and the stages
    sound enough to expand (no error of their own, none upstream)."""

    doc: Document
    manifest: Manifest
    issues: tuple[Issue, ...]
    sound: tuple[Stage, ...]

    def ordered(self, issues: Iterable[Issue]) -> list[Issue]:
        """``issues`` in file order (this file's first)."""
        return sorted(issues, key=lambda i: (i.file != self.doc.file, i.file, i.line, i.column))


def read(path: str | Path, *, max_jobs: int | None = None) -> Read:
    """Read the manifest file at ``path`` (steps 1-3). ``max_jobs`` overrides its job limit."""
    path = Path(path)
    return read_document(load_yaml(path), path, max_jobs=max_jobs)


def read_text(text: str | bytes, path: str | Path, *, max_jobs: int | None = None) -> Read:
    """Read a manifest given as YAML (or JSON) text, as if it were the file ``path``: relative paths in it
    (output, data files, images) are taken from ``path``'s folder, and issues name ``path``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return read_document(parse_yaml(raw, str(path)), Path(path), max_jobs=max_jobs)


def read_document(doc: Document, path: Path, *, max_jobs: int | None = None) -> Read:
    """Steps 2 and 3 on a parsed YAML document; raises ManifestError when the schema's errors leave
    nothing to parse."""
    issues = schema_issues(doc)
    if issues:
        fixed = repaired(doc)
        if fixed is None:
            raise ManifestError(_ordered(doc, issues))
        doc = fixed
    manifest, found, unsound = parse(doc, path, max_jobs=max_jobs)
    return Read(doc, manifest, tuple(issues + found), _sound(manifest.stages, unsound))


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
