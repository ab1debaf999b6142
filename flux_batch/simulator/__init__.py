"""A Replicate-compatible simulator: flux-batch's embedded default backend and its test bed.

``create_app(config, clock=...)`` returns an ASGI app serving the predictions API at ``/v1`` and, proxy
style, at ``/replicate/v1``; ``flux-batch simulate`` serves it with uvicorn. See ``docs/simulator.md``.
"""

from __future__ import annotations

from flux_batch.simulator.app import SimulatorApp, create_app
from flux_batch.simulator.config import FaultSpec, SimConfig, load_profile, parse_fault

__all__ = [
    "FaultSpec",
    "SimConfig",
    "SimulatorApp",
    "create_app",
    "load_profile",
    "parse_fault",
]
