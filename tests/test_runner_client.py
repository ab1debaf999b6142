"""The API client over httpx.MockTransport: URLs, headers, error translation, Retry-After parsing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from flux_batch.errors import (
    AuthError,
    BillingError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from flux_batch.runner.client import ApiClient, parse_prediction, retry_after_seconds

BASE = "https://proxy.example/replicate/v1"


def pred(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "p1",
        "status": "succeeded",
        "model": "black-forest-labs/flux-pro",
        "input": {"prompt": "a cake"},
        "output": "https://replicate.delivery/x/out.webp",
        "metrics": {"predict_time": 1.5},
        "urls": {"get": "https://api.replicate.com/v1/predictions/p1"},
    }
    body.update(kw)
    return body


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], token: str | None = "r8_secret"
) -> ApiClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ApiClient(http, BASE + "/", token, wall_clock=lambda: 1_700_000_000.0)


async def test_create_by_model_sends_prefer_wait_and_cancel_after() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=pred())

    client = client_for(handler)
    p = await client.create(
        "black-forest-labs/flux-pro", None, {"prompt": "a cake"}, wait=30, cancel_after_s=600
    )
    req = seen[0]
    assert str(req.url) == BASE + "/models/black-forest-labs/flux-pro/predictions"
    assert req.headers["Prefer"] == "wait=30"
    assert req.headers["Cancel-After"] == "600s"
    assert req.headers["Authorization"] == "Bearer r8_secret"
    assert json.loads(req.content) == {"input": {"prompt": "a cake"}}
    assert p.done and p.output_urls() == ("https://replicate.delivery/x/out.webp",)
    assert p.predict_time == 1.5
    assert client.calls["create"] == 1


async def test_a_models_create_url_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx parses a URL given as text at every request (about 18 us); a model's create URL is the same
    for every job, so it is given parsed: 10 creates of one model and 10 of another parse 2 URLs (20 on
    main), and each still goes to its own URL."""
    urls: list[str] = []
    parsed: list[str] = []
    real_urlparse = httpx._urls.urlparse

    def counted(url: str = "", **kw: object) -> object:
        parsed.append(url)
        return real_urlparse(url, **kw)

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(201, json=pred())

    client = client_for(handler)
    monkeypatch.setattr(httpx._urls, "urlparse", counted)
    for model in ("black-forest-labs/flux-pro", "black-forest-labs/flux-schnell"):
        for i in range(10):
            await client.create(model, None, {"prompt": f"a cake {i}"})
    assert len([u for u in parsed if u.endswith("/predictions")]) == 2
    assert (
        urls
        == [BASE + "/models/black-forest-labs/flux-pro/predictions"] * 10
        + [BASE + "/models/black-forest-labs/flux-schnell/predictions"] * 10
    )


async def test_create_by_version_posts_to_predictions() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=pred(status="starting", output=None))

    client = client_for(handler)
    p = await client.create("acme/model", "a" * 64, {"prompt": "x"})
    assert seen[0].url.path == "/replicate/v1/predictions"
    # owner/name:<id>, one of the three forms POST /predictions takes (the OpenAPI description's
    # ``version``): the model is named too, so a server that does not know the id still can run it
    assert json.loads(seen[0].content) == {"version": "acme/model:" + "a" * 64, "input": {"prompt": "x"}}
    assert not p.done and p.output_urls() == ()


async def test_get_and_cancel_urls_come_from_the_base_url_not_urls() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url}")
        return httpx.Response(200, json=pred())

    client = client_for(handler)
    await client.get("p1")
    await client.cancel("p1")
    assert paths == [f"GET {BASE}/predictions/p1", f"POST {BASE}/predictions/p1/cancel"]


async def test_list_follows_next_cursor_on_the_configured_host() -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        if "cursor" not in request.url.params:
            return httpx.Response(
                200,
                json={
                    "results": [pred(id="a")],
                    "next": "https://api.replicate.com/v1/predictions?cursor=c2",
                },
            )
        return httpx.Response(200, json={"results": [pred(id="b")], "next": None})

    client = client_for(handler)
    ids = [p.id async for p in client.list_created_after("2024-01-01T00:00:00Z")]
    assert ids == ["a", "b"]
    assert urls[1] == BASE + "/predictions?cursor=c2"
    assert client.calls["list"] == 2


@pytest.mark.parametrize(
    ("status", "body", "exc"),
    [
        (
            401,
            {"title": "Unauthenticated", "detail": "You did not pass a valid token", "status": 401},
            AuthError,
        ),
        (403, {"detail": "forbidden"}, AuthError),
        (402, {"title": "Billing required", "detail": "add a card", "status": 402}, BillingError),
        (404, {"detail": "model not found"}, NotFoundError),
        (422, {"detail": "input.steps: must be <= 50", "status": 422}, InvalidInputError),
        (502, None, ServerError),
        (405, {"detail": "method not allowed"}, ProtocolError),
    ],
)
async def test_http_errors_translate(status: int, body: object, exc: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text="<html><body>Bad Gateway</body></html>")
        return httpx.Response(status, json=body)

    with pytest.raises(exc) as info:
        await client_for(handler).get("p1")
    assert getattr(info.value, "status", 0) == status
    if status == 422:
        assert "must be <= 50" in str(info.value)
    if status == 502:
        assert "HTML error page" in str(info.value)


async def test_429_carries_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"detail": "Request was throttled. Your rate limit resets in ~30s."})

    with pytest.raises(RateLimitedError) as info:
        await client_for(handler).create("a/b", None, {})
    assert info.value.retry_after == 30.0
    assert info.value.limit_rpm is None


async def test_a_low_credit_429_carries_the_stated_limit() -> None:
    detail = (
        "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per minute"
        " with a burst of 1 requests while you have less than $5.0 in credit. Your rate limit resets in ~5s."
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"detail": detail, "status": 429, "retry_after": 5})

    with pytest.raises(RateLimitedError) as info:
        await client_for(handler).create("a/b", None, {})
    assert (info.value.retry_after, info.value.limit_rpm) == (5.0, 6.0)


def _resp(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(429, headers=headers or {}, request=httpx.Request("GET", BASE))


def test_retry_after_sources_in_order() -> None:
    now = 1_700_000_000.0
    body = {"retry_after": 5, "detail": "resets in ~9s"}
    assert retry_after_seconds(_resp({"Retry-After": "12"}), body, now=now) == 12.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # now + 20 s
    assert retry_after_seconds(_resp({"Retry-After": date}), body, now=now) == 20.0
    assert retry_after_seconds(_resp(), body, now=now) == 5.0
    assert retry_after_seconds(_resp(), {"detail": "Your rate limit resets in ~9s."}, now=now) == 9.0
    assert retry_after_seconds(_resp(), {"detail": "slow down"}, now=now) is None
    assert retry_after_seconds(_resp({"Retry-After": "soon"}), None, now=now) is None


@pytest.mark.parametrize(
    ("exc", "sent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow"), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("Server disconnected"), True),
        (httpx.ReadError("reset"), True),
    ],
)
async def test_transport_errors_say_whether_the_request_was_sent(exc: Exception, sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransportError) as info:
        await client_for(handler).create("a/b", None, {})
    assert info.value.sent is sent


async def test_malformed_and_unknown_status_are_protocol_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/bad"):
            return httpx.Response(200, text="not json")
        return httpx.Response(200, json=pred(status="exploded"))

    client = client_for(handler)
    with pytest.raises(ProtocolError, match="unknown status 'exploded'"):
        await client.get("p1")
    with pytest.raises(ProtocolError, match="not JSON"):
        await client.get("bad")


def test_output_shapes() -> None:
    assert parse_prediction(pred(output=["u1", "u2"])).output_urls() == ("u1", "u2")
    with pytest.raises(ProtocolError):
        parse_prediction(pred(output={"weights": "x"})).output_urls()
    with pytest.raises(ProtocolError):
        parse_prediction({"status": "succeeded"})


async def test_token_only_to_the_api_host_and_upload() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "f1", "urls": {"get": "https://proxy.example/files/f1"}})

    client = client_for(handler)
    assert client.auth_headers("https://replicate.delivery/x.png") == {}
    assert client.auth_headers(BASE + "/files") == {"Authorization": "Bearer r8_secret"}
    url = await client.upload(b"\x89PNG...", "cat.png", "image/png")
    assert url == "https://proxy.example/files/f1"
    assert b'name="content"; filename="cat.png"' in seen[0].content
