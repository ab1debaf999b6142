"""Ambiguous-create reconciliation: matching, time window, known ids, unsupported listing, the policy."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from flux_batch.runner.client import ApiClient, parse_prediction
from flux_batch.runner.reconcile import Found, find_created, iso_utc, matches, should_create_again

NOW = 1_750_000_000.0


def item(pid: str, seconds_after: float, **inp: object) -> dict[str, object]:
    return {
        "id": pid,
        "status": "starting",
        "model": "a/b",
        "input": inp,
        "created_at": iso_utc(NOW + seconds_after),
    }


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> ApiClient:
    return ApiClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://api/v1", "t")


def test_matches_compares_canonical_input_and_model() -> None:
    p = parse_prediction(item("x", 0, prompt="cat", guidance=3.0))
    assert matches(p, "a/b", None, {"guidance": 3, "prompt": "cat"})
    assert not matches(p, "a/c", None, {"guidance": 3, "prompt": "cat"})
    assert not matches(p, "a/b", None, {"guidance": 4, "prompt": "cat"})


async def test_finds_the_unknown_match_in_the_window() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["created_after"])
        results = [
            item("new", 5, prompt="dog"),
            item("mine", 2, prompt="cat"),
            item("old", -3600, prompt="cat"),
        ]
        return httpx.Response(200, json={"results": results, "next": None})

    found = await find_created(
        client_for(handler),
        model="a/b",
        version=None,
        sent_input={"prompt": "cat"},
        since=NOW,
        is_known=lambda i: False,
    )
    assert found.listed and found.prediction is not None and found.prediction.id == "mine"
    assert seen == [iso_utc(NOW - 60)]

    known = await find_created(
        client_for(handler), model="a/b", version=None, sent_input={"prompt": "cat"}, since=NOW,
        is_known=lambda i: i == "mine",
    )  # fmt: skip
    assert known == Found(None, listed=True)


async def test_unsupported_listing_and_policy() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "not here"})

    found = await find_created(
        client_for(handler), model="a/b", version=None, sent_input={}, since=NOW, is_known=lambda i: False
    )
    assert found == Found(None, listed=False)
    assert should_create_again(found, "create") and not should_create_again(found, "fail")
    assert should_create_again(Found(None, listed=True), "fail")
