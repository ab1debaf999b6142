"""flux-batch: declarative batch pipelines for FLUX image generation over the Replicate API.

The data flow, one module (or subpackage) a step:

    manifest (YAML)  ->  flux_batch.manifest   load, validate against JSON Schema, parse
                     ->  flux_batch.expand      sweep expansion into a stream of Jobs (ids, seeds)
                     ->  flux_batch.plan        counts, cost and time estimates
                     ->  flux_batch.runner      client, limits, state, downloads, outputs
                     ->  flux_batch.report      report.html and contact sheets

``flux_batch.simulator`` is a Replicate-compatible backend used by the quickstart and the tests.
"""

from __future__ import annotations

__version__ = "0.1.0"
