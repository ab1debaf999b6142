"""What flux-batch assumes when neither the manifest nor the command line says: each number once.

The manifest's JSON Schema (``schemas/manifest.schema.json``) states the same defaults for editors; a test
checks that they agree. The rates are Replicate's published limits (see ``docs/running.md``), which the
simulator also enforces by default; a manifest or a flag lowers them for a proxy or a shared account.
"""

from __future__ import annotations

#: Prediction creates per minute (Replicate allows 600).
CREATE_RPM = 600
#: Other requests (polls, lists, cancels, uploads) per minute (Replicate allows 3000).
OTHER_RPM = 3000
#: Creates allowed back to back before the per-minute rate applies.
BURST = 10
#: The most predictions in flight at once: a ceiling, the run keeps what its rate needs (runner/in_flight.py).
MAX_IN_FLIGHT = 500
#: The longest ``Prefer: wait`` the API honours, in seconds; also the default (a create holds for its
#: result, so most jobs need one call). 0 sends no ``Prefer`` header.
MAX_WAIT_S = 60
WAIT_S = MAX_WAIT_S
#: A prediction still running this long after its creation is canceled.
DEADLINE_S = 600.0
#: ``run`` asks on a terminal before spending more than this (estimated, US dollars).
CONFIRM_ABOVE_USD = 5.0
#: A manifest that expands to more jobs than this is refused (``max_jobs`` or ``--max-jobs`` raise it).
MAX_JOBS = 1_000_000
#: The environment variable holding the API token.
TOKEN_ENV = "REPLICATE_API_TOKEN"
