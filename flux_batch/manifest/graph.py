"""The stage graph: dangling references, cycles, and a stable topological order.

Pure: it takes each stage's id and the ids it needs, and returns the order in which to expand and run the
stages, or the problems that prevent one.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flux_batch.models.catalog import suggest


@dataclass(frozen=True)
class GraphProblem:
    """``stage`` refers to ``ref`` wrongly (``kind`` is "unknown", "self" or "cycle")."""

    stage: str
    ref: str
    kind: str
    message: str
    hint: str = ""


def check_graph(needs: Mapping[str, Sequence[str]]) -> list[GraphProblem]:
    """Every unknown reference, self reference and cycle in ``needs`` (stage id -> ids it needs)."""
    problems: list[GraphProblem] = []
    for stage, refs in needs.items():
        for ref in refs:
            if ref == stage:
                problems.append(GraphProblem(stage, ref, "self", f"stage {stage!r} needs itself"))
            elif ref not in needs:
                hint = suggest(ref, list(needs)) or f"stages are: {', '.join(needs)}"
                problems.append(GraphProblem(stage, ref, "unknown", f"no stage {ref!r}", hint))
    if not problems:
        cycle = find_cycle(needs)
        if cycle:
            loop = " -> ".join([*cycle, cycle[0]])  # each stage needs the next
            problems.append(
                GraphProblem(
                    cycle[0],
                    cycle[-1],
                    "cycle",
                    f"stages depend on each other in a cycle: {loop}",
                    "a stage can only take images from stages that do not need it",
                )
            )
    return problems


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle as a list of stage ids (each needing the next... back to the first), or ``[]``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for ref in needs.get(node, ()):
            if state.get(ref) == 1:
                return path[path.index(ref) :]
            if ref in needs and ref not in state:
                found = visit(ref)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in needs:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def topological_order(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Stages ordered so that each comes after every stage it needs; ties keep the written order.

    ``needs`` must be free of unknown references and cycles (see :func:`check_graph`).
    """
    position = {stage: i for i, stage in enumerate(needs)}
    waiting = {stage: len(set(refs)) for stage, refs in needs.items()}
    users: dict[str, list[str]] = {stage: [] for stage in needs}
    for stage, refs in needs.items():
        for ref in set(refs):
            users[ref].append(stage)
    ready = [(position[s], s) for s, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, stage = heapq.heappop(ready)
        order.append(stage)
        for user in users[stage]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (position[user], user))
    if len(order) != len(needs):
        raise ValueError("the stage graph has a cycle")
    return order
