"""The manifest language: YAML with positions, JSON Schema validation, semantic checks, and the model.

    import flux_batch
    manifest = flux_batch.load("pipelines/cake.yaml")   # raises errors.ManifestError with every issue

Modules: ``yaml_loader`` (YAML -> data + positions), ``validate`` (the JSON Schema check), ``parse``
(semantic checks, data files), ``template`` (prompt templates), ``sweep`` (the axes and their file
sources), ``graph`` (the stage graph), ``model`` (the frozen values), ``loader`` (the steps in order),
``api_url`` (what ``api.base_url`` / ``--base-url`` may be; the runner asks it whose host a URL names).
Checks that need the jobs (the job limit, every job's input) are :mod:`flux_batch.jobs.checks`'; this
package imports nothing of :mod:`flux_batch.jobs` but the job value's reference helpers (``jobs.job``):
expansion builds on the manifest, never the other way.
"""

from __future__ import annotations

from flux_batch.manifest.loader import Read, read, read_text
from flux_batch.manifest.model import ApiSettings, ImageSource, Manifest, Stage

__all__ = ["ApiSettings", "ImageSource", "Manifest", "Read", "Stage", "read", "read_text"]
