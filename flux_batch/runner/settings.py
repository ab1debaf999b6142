"""A run's settings and figures, as values: what the runner is told (:class:`RunSettings`), what it counts
as it goes (:class:`RunStats`) and how it ended (:class:`RunResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flux_batch import defaults
from flux_batch.errors import FluxBatchError
from flux_batch.models.pricing import Price
from flux_batch.runner.download import DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class RunSettings:
    """How to run. ``base_dir`` resolves local image paths named by the manifest."""

    out_dir: Path
    base_dir: Path = Path(".")
    max_in_flight: int = defaults.MAX_IN_FLIGHT
    wait: int = defaults.WAIT_S
    deadline_s: float = defaults.DEADLINE_S
    deadline_grace_s: float = 30.0
    ambiguous_create: str = "create"
    max_cost_usd: float | None = None
    cancel_on_interrupt: bool = False
    retention_s: float = 3600.0
    freshness_margin_s: float = 300.0
    max_download_bytes: int = DEFAULT_MAX_BYTES
    download_deadline_s: float | None = None  # None: download.DEFAULT_DEADLINE_S
    max_create_tries: int = 8
    max_redo: int = 1  # times a run creates a job again because the API says its output is gone
    identical_404s: int = 3  # identical 404s on create, before any create worked, that stop the run
    checkpoint_every_s: float = 5.0
    #: Each model's price (owner/name -> Price): a job priced by megapixel is charged what the API billed.
    prices: Mapping[str, Price] = field(default_factory=dict)


@dataclass
class RunStats:
    throttled_429: int = 0
    retries: int = 0
    ambiguous_creates: int = 0
    reattached: int = 0
    possible_duplicates: int = 0
    unfinished: int = 0
    recreated: int = 0  # predictions created again because the API said the output was gone


@dataclass(frozen=True)
class RunResult:
    """How the run ended. ``fatal`` is the auth or billing error that stopped it, if any."""

    interrupted: bool
    fatal: FluxBatchError | None
    budget_reached: bool
    stats: RunStats
    api_calls: dict[str, int] = field(default_factory=dict)
