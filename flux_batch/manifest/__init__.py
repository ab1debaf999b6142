"""The manifest language: YAML with positions, JSON Schema validation, semantic checks, and the model.

    from flux_batch.manifest import load, Manifest, ApiSettings, Stage
    manifest = load("pipelines/cake.yaml")      # raises errors.ManifestError with every issue

Modules: ``yaml_loader`` (YAML -> data + positions), ``validate`` (the JSON Schema check), ``parse``
(semantic checks, data files), ``checks`` (every job's input against its model), ``model`` (the frozen
values), ``loader`` (the steps in order).
"""

from __future__ import annotations

from flux_batch.manifest.loader import load, loads
from flux_batch.manifest.model import ApiSettings, ImageSource, Manifest, Stage

__all__ = ["ApiSettings", "ImageSource", "Manifest", "Stage", "load", "loads"]
