"""flux-batch: declarative batch pipelines for FLUX image generation over the Replicate API.

The library in five calls (see ``docs/library.md``)::

    import flux_batch
    manifest = flux_batch.load("pipelines/quickstart.yaml")   # or flux_batch.loads({...}) built in code
    print(flux_batch.plan(manifest).cost_usd)                  # jobs, cost and time, before anything runs
    result = flux_batch.run(manifest, simulator=True)          # or: await flux_batch.arun(...) in Jupyter
    df = flux_batch.results(result.out_dir).to_pandas()        # one row per image
    flux_batch.status(result.out_dir)                          # where a folder stands, even mid-run

Every error is a :class:`flux_batch.errors.FluxBatchError`; ``flux_batch.testing`` helps users' own tests.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from flux_batch.jobs.status import JobStatus

if TYPE_CHECKING:
    from flux_batch.api import Declined, Results, RunResult, arun, load, loads, plan, results, run, status

_API = frozenset(
    {"Declined", "Results", "RunResult", "arun", "load", "loads", "plan", "results", "run", "status"}
)


def __getattr__(name: str) -> Any:
    """The library's calls, imported at their first use: a process that needs one module of the package
    (the image workers, the process writing a run's tables) does not load the HTTP clients with it."""
    if name in _API:
        from flux_batch import api

        return getattr(api, name)
    raise AttributeError(f"module 'flux_batch' has no attribute {name!r}")


__all__ = [
    "Declined",
    "JobStatus",
    "Results",
    "RunResult",
    "__version__",
    "arun",
    "load",
    "loads",
    "plan",
    "results",
    "run",
    "status",
]
