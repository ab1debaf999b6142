"""The loaded manifest as frozen values: :class:`Manifest`, its :class:`ApiSettings` and :class:`Stage` s.

These are what the rest of flux-batch reads. They hold everything expansion needs (compiled templates,
resolved sweeps, literal inputs with defaults applied) and nothing that changes at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_batch import defaults
from flux_batch.errors import Issue
from flux_batch.manifest.api_url import DEFAULT_BASE_URL
from flux_batch.manifest.sweep import Sweep
from flux_batch.manifest.template import Template
from flux_batch.models import catalog

DEFAULT_MAX_JOBS = defaults.MAX_JOBS
#: The sweep variable that sets each job's model (``matrix: {model: [...]}``).
MODEL_VAR = "model"


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the API and how hard to push it."""

    base_url: str = DEFAULT_BASE_URL
    token_env: str = defaults.TOKEN_ENV
    create_rpm: float = defaults.CREATE_RPM
    other_rpm: float = defaults.OTHER_RPM
    burst: int = defaults.BURST
    max_in_flight: int = (
        defaults.MAX_IN_FLIGHT
    )  # a ceiling: the run keeps what the rate needs (runner/in_flight.py)
    wait: int = defaults.WAIT_S
    deadline_s: float = defaults.DEADLINE_S
    simulator: bool = False
    ambiguous_create: str = "create"
    confirm_above_usd: float = defaults.CONFIRM_ABOVE_USD


@dataclass(frozen=True)
class ImageSource:
    """An image input fed by an upstream stage: one job per upstream image whose variables match ``where``."""

    input: str
    stage: str
    where: Mapping[str, Any] = field(default_factory=dict)
    #: Set: all the upstream images whose variables share these values go to one job, as a list (an
    #: empty tuple: all of them). None: one job per upstream image.
    group_by: tuple[str, ...] | None = None
    #: Set: the source is element ``slot`` of a list input written in the manifest; its images go where
    #: the stage's literal list holds ``{"$slot": slot}``.
    slot: int | None = None


@dataclass(frozen=True)
class Stage:
    """One stage: a model, a prompt template, fixed inputs and the sweep that multiplies them.

    ``input`` holds the literal inputs with the manifest's defaults applied (local files already as
    ``{"$file": ..., "sha256": ...}`` references); ``sources`` the upstream image inputs; ``input_vars``
    the sweep variables that set model inputs; ``files`` for each globbed image variable the sha256 of
    each of its files, by path.
    """

    id: str
    model: str  # the stage's model; with a ``model`` sweep variable, that of jobs whose values lack one
    version: str | None = None
    models: tuple[str, ...] = ()  # every model (owner/name[:version]) its jobs use, in sweep order
    needs: tuple[str, ...] = ()
    product_axes: tuple[str, ...] = ()
    var_names: tuple[str, ...] = ()
    prompt: Template | None = field(default=None, repr=False)
    input: Mapping[str, Any] = field(default_factory=dict, repr=False)
    sources: tuple[ImageSource, ...] = ()
    sweep: Sweep = field(default_factory=Sweep, repr=False)
    input_vars: frozenset[str] = frozenset()
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    same_seed_across: frozenset[str] = frozenset()
    index: int = 0  # position in the manifest's stages list, for locating issues
    origins: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)  # variable -> JSON path
    own_inputs: frozenset[str] = frozenset()  # inputs the stage sets itself (not from defaults)
    list_inputs: frozenset[str] = frozenset()  # image inputs that take a list of images

    @property
    def model_varies(self) -> bool:
        """True when ``model`` is a sweep variable: each job's model is its own."""
        return MODEL_VAR in self.var_names

    def job_model(self, combo: Mapping[str, Any]) -> tuple[str, str | None]:
        """``(owner/name, version or None)`` of the job with sweep values ``combo``."""
        ref = combo.get(MODEL_VAR) if self.model_varies else None
        if not isinstance(ref, str):
            return self.model, self.version
        try:
            return catalog.split_ref(ref)
        except ValueError:  # refused by the parser; never reached for a loaded manifest
            return ref, None


@dataclass(frozen=True)
class Manifest:
    """A loaded, fully validated manifest. ``stages`` are in topological order."""

    path: Path
    name: str
    output: Path
    api: ApiSettings
    base_seed: int
    defaults: Mapping[str, Any]
    vars: Mapping[str, Any]
    stages: tuple[Stage, ...]
    max_jobs: int = DEFAULT_MAX_JOBS
    max_cost_usd: float | None = None
    retry_failed: bool = False
    reseed_failed: bool = False
    prices: Mapping[str, Any] = field(default_factory=dict)
    schemas: Mapping[str, catalog.ModelSpec] = field(default_factory=dict, repr=False)  # from schema files
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    warnings: tuple[Issue, ...] = ()

    def stage(self, stage_id: str) -> Stage:
        """The stage with id ``stage_id`` (KeyError if none)."""
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def spec_for(self, stage_id: str) -> catalog.ModelSpec:
        """The model spec of a stage (of its default model), with the manifest's price override applied."""
        return self.spec(self.stage(stage_id).model)

    def model_names(self) -> tuple[str, ...]:
        """Every model (``owner/name``) the manifest's jobs use, in stage and sweep order."""
        refs = (ref for stage in self.stages for ref in stage.models or (stage.model,))
        return tuple(dict.fromkeys(catalog.split_ref(ref)[0] for ref in refs))

    def spec(self, model: str) -> catalog.ModelSpec:
        """The spec of ``owner/name``: a manifest's schema file, built in or fetched; with its price."""
        return catalog.get_model(model, self.prices.get(model), self.schemas)
