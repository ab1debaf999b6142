"""Which faults fire on a request: each :class:`FaultSpec` counts its requests and draws from its own RNG.

Every fault has its own ``random.Random`` seeded from the simulator seed and the fault's position, so the
same seed and the same sequence of requests give the same faults, and adding a fault leaves the draws of
the others unchanged.
"""

from __future__ import annotations

import random

from flux_batch.simulator.config import FaultSpec

HTML_STATUSES = (500, 502, 503)


class FaultPlan:
    """The live state of the configured faults: per-fault request counters and RNGs."""

    def __init__(self, faults: tuple[FaultSpec, ...], seed: int) -> None:
        self.faults = faults
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        self._counts = [0] * len(self.faults)
        self._rngs = [random.Random(f"{self._seed}:{i}:{f.kind}") for i, f in enumerate(self.faults)]
        self.fired: dict[str, int] = {}
        self._status_rng = random.Random(f"{self._seed}:status")

    def draw_status(self) -> int:
        """A 5xx status for an HTML error page whose fault names none."""
        return self._status_rng.choice(HTML_STATUSES)

    def draw(self, endpoint: str, *, skip: tuple[str, ...] = ()) -> list[FaultSpec]:
        """Count this request against every fault applying to ``endpoint``; return those that fire.
        Faults of a kind in ``skip`` do not apply to this request (neither counted nor drawn)."""
        if not self.faults:
            return []
        fired = []
        for i, fault in enumerate(self.faults):
            if not fault.applies_to(endpoint) or fault.kind in skip:
                continue
            self._counts[i] += 1
            if self._fires(fault, self._counts[i], self._rngs[i]):
                fired.append(fault)
                self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
        return fired

    @staticmethod
    def _fires(fault: FaultSpec, n: int, rng: random.Random) -> bool:
        if fault.after is not None and n < fault.after:
            return False
        if fault.requests is not None and not fault.requests[0] <= n <= fault.requests[1]:
            return False
        if fault.every is not None and n % fault.every:
            return False
        # The draw happens only when the other schedules hold, so a probability acts within them.
        return fault.probability is None or rng.random() < fault.probability

    def __repr__(self) -> str:
        return f"FaultPlan({len(self.faults)} faults, fired={self.fired})"


def first(fired: list[FaultSpec], *kinds: str) -> FaultSpec | None:
    """The first fired fault of one of ``kinds``, or None."""
    for fault in fired:
        if fault.kind in kinds:
            return fault
    return None
