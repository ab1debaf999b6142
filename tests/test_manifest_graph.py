"""The stage graph: unknown, self and cyclic references; a stable topological order."""

from __future__ import annotations

import pytest

from flux_batch.manifest.graph import check_graph, find_cycle, topological_order


def test_valid_graph_has_no_problems() -> None:
    assert check_graph({"a": [], "b": ["a"], "c": ["a", "b"]}) == []


def test_unknown_reference_with_suggestion() -> None:
    (problem,) = check_graph({"base": [], "edit": ["bas"]})
    assert (problem.stage, problem.kind, problem.message, problem.hint) == (
        "edit",
        "unknown",
        "no stage 'bas'",
        "did you mean 'base'?",
    )


def test_self_reference() -> None:
    assert [p.kind for p in check_graph({"a": ["a"]})] == ["self"]


def test_cycle_reported_with_its_path() -> None:
    (problem,) = check_graph({"a": ["c"], "b": ["a"], "c": ["b"]})
    assert problem.kind == "cycle"
    assert problem.message.endswith("a -> c -> b -> a")
    assert find_cycle({"x": [], "y": ["x"]}) == []


def test_topological_order_keeps_written_order_for_ties() -> None:
    assert topological_order({"late": ["early"], "early": [], "other": []}) == ["early", "late", "other"]
    assert topological_order({"c": ["b"], "b": ["a"], "a": []}) == ["a", "b", "c"]


def test_topological_order_refuses_cycles() -> None:
    with pytest.raises(ValueError):
        topological_order({"a": ["b"], "b": ["a"]})
