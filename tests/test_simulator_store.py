"""Prediction lifecycles read off the clock, cancels and deadlines, and list pages."""

from __future__ import annotations

from flux_batch.models.catalog import get_model
from flux_batch.simulator.store import Store

PRO = get_model("black-forest-labs/flux-pro")


def test_timeline_starting_processing_succeeded() -> None:
    p = Store().create(PRO, "hidden", {"prompt": "x", "seed": 3}, 100.0, latency=10.0)
    assert p.state(100.0) == ("starting", None, None)
    assert p.state(105.0) == ("processing", 101.0, None)
    assert p.state(110.0) == ("succeeded", 101.0, 110.0)
    assert p.logs("succeeded", 110.0).startswith("Using seed: 3\n")


def test_cancel_before_start_and_deadlines() -> None:
    store = Store()
    early = store.create(PRO, "hidden", {"prompt": "x"}, 0.0, latency=100.0)
    store.cancel(early, 5.0)
    assert early.state(6.0) == ("canceled", None, 5.0)
    aborted = store.create(PRO, "hidden", {"prompt": "x"}, 0.0, latency=100.0, deadline=5.0)
    assert aborted.state(6.0)[0] == "aborted"
    cut = store.create(PRO, "hidden", {"prompt": "x"}, 0.0, latency=100.0, deadline=50.0)
    assert cut.state(60.0) == ("canceled", 10.0, 50.0)
    finished = store.create(PRO, "hidden", {"prompt": "x"}, 0.0, latency=10.0, deadline=50.0)
    store.cancel(finished, 20.0)
    assert finished.state(60.0)[0] == "succeeded"


def test_ids_and_seeds_reproducible_per_store_seed() -> None:
    a, b = Store(seed=1), Store(seed=1)
    assert [a.new_id() for _ in range(3)] == [b.new_id() for _ in range(3)]
    assert a.new_id() != Store(seed=2).new_id()


def test_pages_newest_first() -> None:
    store = Store()
    made = [store.create(PRO, "hidden", {"prompt": str(i)}, float(i), latency=0.0) for i in range(7)]
    page, cursor = store.page(before_seq=None, created_after=None, created_before=None, limit=3)
    assert page == made[::-1][:3] and cursor == made[4].seq
    page, cursor = store.page(before_seq=cursor, created_after=2.0, created_before=None, limit=3)
    assert page == made[3:1:-1] and cursor is None
