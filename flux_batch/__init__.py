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

from flux_batch.api import (
    Declined,
    Results,
    RunResult,
    arun,
    load,
    loads,
    plan,
    results,
    run,
    status,
)
from flux_batch.jobs.status import JobStatus

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
