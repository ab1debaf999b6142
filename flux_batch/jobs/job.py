"""The job: one prediction to make, as produced by expansion and consumed by the runner.

A job's ``input`` is the exact model input that will be sent, seed included, except for image inputs that
only exist at run time. Those hold a reference mapping instead of a URL:

    {"$upstream": "<job id>", "output": 0}    the first output image of an upstream job
    {"$file": "photos/cat.jpg", "sha256": "..."}   a local file named by the manifest (path as written,
                                                   resolved against the manifest's folder)

References hash into the job id like any other value (an upstream job's id, a file's content hash), so
a changed upstream job or a changed photo changes every job that consumes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flux_batch.outputs.layout import image_stem

UPSTREAM_KEY = "$upstream"
FILE_KEY = "$file"


def upstream_ref(job_id: str, output: int = 0) -> dict[str, Any]:
    return {UPSTREAM_KEY: job_id, "output": output}


def file_ref(path: str, sha256: str) -> dict[str, Any]:
    return {FILE_KEY: path, "sha256": sha256}


def is_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and (UPSTREAM_KEY in value or FILE_KEY in value)


@dataclass(frozen=True)
class Job:
    """One prediction. ``vars`` are the sweep values that produced it (prompt variables, swept inputs,
    ``repeat``, and an upstream job's variables for chain stages); ``needs`` the upstream job ids."""

    id: str
    stage: str
    model: str
    version: str | None
    input: Mapping[str, Any]
    vars: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    slug: str = "image"

    @property
    def prompt(self) -> str:
        return str(self.input.get("prompt", ""))

    @property
    def seed(self) -> int | None:
        seed = self.input.get("seed")
        return int(seed) if seed is not None else None

    def file_stem(self, output_index: int = 0) -> str:
        """The output file's name without extension: the job id (never the prompt: see
        :mod:`flux_batch.outputs.layout`); a safe single path part."""
        return image_stem(self.id, output_index)

    def image_refs(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(input name, reference)`` for every image input that is resolved at run time."""
        for key, value in self.input.items():
            if is_ref(value):
                yield key, value

    def to_json(self) -> dict[str, Any]:
        """The ``plan --jobs`` line: ``id, stage, model, version, input, needs, vars``."""
        return {
            "id": self.id,
            "stage": self.stage,
            "model": self.model,
            "version": self.version,
            "input": dict(self.input),
            "needs": list(self.needs),
            "vars": dict(self.vars),
        }
