"""The HTTP client of real runs (httpx over aiohttp) against servers on loopback: what a failure says about
whether the request may have arrived, TLS with the simulator's authority, keep-alive, the token kept to the
API host, and the connection limit."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import socketserver
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from flux_batch.errors import FluxBatchError, TransportError
from flux_batch.runner.client import ApiClient
from flux_batch.runner.http_client import HEADROOM, Transport, http_client
from flux_batch.simulator import FaultSpec, SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread
from flux_batch.simulator.tls import make_tls

SCHNELL = "black-forest-labs/flux-schnell"
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@contextmanager
def hanging_up() -> Iterator[str]:
    """A server that reads each request whole and closes the connection without a word."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                data += self.request.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: *(\d+)", head, re.I)[1])  # type: ignore[index]
            while len(body) < length:
                body += self.request.recv(65536)
            self.request.close()

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        # shutdown() waits for the loop's next poll: every 20 ms rather than the default half second
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/v1"
        finally:
            server.shutdown()


async def test_a_connection_closed_after_a_create_was_sent_is_an_ambiguous_create() -> None:
    with hanging_up() as base:
        async with http_client(4) as http:
            client = ApiClient(http, base, "r8_test")
            with pytest.raises(TransportError) as info:
                await client.create(SCHNELL, None, {"prompt": "x"}, wait=0)
    assert info.value.sent  # may have been created: found by listing, never blindly created again


async def test_httpx_aiohttp_alone_would_call_that_close_a_connect_timeout() -> None:
    """Why flux-batch translates aiohttp's errors itself: httpx-aiohttp's own mapping reads the same hang-up
    as a connect timeout, which the API client takes for "never sent" (and would create again)."""
    with hanging_up() as base:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
            client = ApiClient(http, base, "r8_test")
            with pytest.raises(TransportError) as info:
                await client.create(SCHNELL, None, {"prompt": "x"}, wait=0)
    assert not info.value.sent


async def test_a_body_cut_short_is_a_lost_answer() -> None:
    fault = FaultSpec("ambiguous_create", mode="drop", requests=(1, 1))
    app = create_app(SimConfig(latency=0, faults=(fault,)))
    with serve_in_thread(app) as base:
        async with http_client(4) as http:
            client = ApiClient(http, base + "/v1", "r8_test")
            with pytest.raises(TransportError) as info:
                await client.create(SCHNELL, None, {"prompt": "x"}, wait=0)
            assert info.value.sent
            assert app.stats()["predictions_created"] == 1
            assert (await client.create(SCHNELL, None, {"prompt": "y"}, wait=0)).id


@contextmanager
def closing_idle_connections(after_s: float, connections: list[int]) -> Iterator[str]:
    """A keep-alive server that answers ``{}`` to each request and closes a connection idle ``after_s``."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connections.append(1)
            self.request.settimeout(after_s)
            data = b""
            while True:
                try:
                    chunk = self.request.recv(65536)
                except TimeoutError:
                    break  # idle too long: close, as uvicorn does after its keep-alive timeout
                if not chunk:
                    break
                data += chunk
                while b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(re.search(rb"content-length: *(\d+)", head, re.I)[1])  # type: ignore[index]
                    if len(rest) < length:
                        break
                    data = rest[length:]
                    self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                         b"content-length: 2\r\n\r\n{}")  # fmt: skip
            self.request.close()

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


async def test_no_request_goes_out_on_a_connection_the_server_closed_while_the_loop_was_busy() -> None:
    """The server closes an idle connection; the client's event loop is busy (blocked here) and has not
    seen the close when the next request goes. aiohttp alone sent it on the closed connection: a POST
    then fails as "Server disconnected" (for a create: ambiguous, settled by listing)."""
    connections: list[int] = []
    with closing_idle_connections(0.2, connections) as base:
        async with http_client(4) as http:
            assert (await http.post(base + "/a", json={})).status_code == 200
            time.sleep(0.6)  # the loop is held: the server's close arrives but is not processed
            assert (await http.post(base + "/b", json={})).status_code == 200
    assert len(connections) == 2


async def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        async with http_client(4) as http:
            client = ApiClient(http, f"http://127.0.0.1:{port}/v1", "r8_test")
            with pytest.raises(TransportError, match="could not connect") as info:
                await client.create(SCHNELL, None, {"prompt": "x"}, wait=0)
    assert not info.value.sent


async def test_tls_with_the_simulators_authority_from_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = make_tls(tmp_path)
    ca = tls.write_ca(tmp_path / "ca.pem")
    with serve_in_thread(create_app(SimConfig(latency=0)), tls=tls) as base:
        async with http_client(4) as http:  # the system's authorities only: refused at the handshake
            with pytest.raises(TransportError) as info:
                await ApiClient(http, base + "/v1", "r8_test").create(SCHNELL, None, {"prompt": "x"}, wait=0)
            assert not info.value.sent
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        async with http_client(4) as http:
            prediction = await ApiClient(http, base + "/v1", "r8_test").create(
                SCHNELL, None, {"prompt": "x"}, wait=5
            )
            assert prediction.status == "succeeded"
            image = await http.get(prediction.output_urls()[0])
            assert image.status_code == 200 and image.content


def recording(app: Asgi, seen: list[tuple[str, Any, str]]) -> Asgi:
    """``app``, recording each request's path, client address and Authorization header."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            seen.append((scope["path"], tuple(scope["client"] or ()), auth))
        await app(scope, receive, send)

    return wrapper


async def creates_and_downloads(http: httpx.AsyncClient, base: str, n: int = 10) -> None:
    """``n`` creates through the API client, each one's output downloaded: ``2 n`` requests."""
    client = ApiClient(http, base + "/v1", "r8_test")
    for i in range(n):
        prediction = await client.create(SCHNELL, None, {"prompt": f"x{i}", "megapixels": "0.25"}, wait=5)
        assert prediction.status == "succeeded"
        assert (await http.get(prediction.output_urls()[0])).status_code == 200


async def test_connections_are_kept_alive_between_requests() -> None:
    seen: list[tuple[str, Any, str]] = []
    with serve_in_thread(recording(create_app(SimConfig(latency=0)), seen)) as base:
        async with http_client(4) as http:
            await creates_and_downloads(http, base)
    assert len(seen) == 20
    assert len({client for _, client, _ in seen}) == 1  # one connection for all twenty requests


async def test_each_answer_is_one_response_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx-aiohttp builds the answer's httpx.Response; nothing copies it (its headers each time) on the
    way to the API client when it succeeded: before, the transport rewrapped every answer in a second one
    and the API client buffered a third (3 a create, 2 a download: 50 here)."""
    built: list[int] = []
    real_init = httpx.Response.__init__

    def counted(self: httpx.Response, *args: Any, **kw: Any) -> None:
        built.append(1)
        real_init(self, *args, **kw)

    with serve_in_thread(create_app(SimConfig(latency=0))) as base:
        async with http_client(4) as http:
            monkeypatch.setattr(httpx.Response, "__init__", counted)
            await creates_and_downloads(http, base)
    assert len(built) == 20


def setting_a_cookie(app: Asgi) -> Asgi:
    """``app``, whose answers to ``/v1/models`` set a cookie."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/v1/models":
                message = {**message, "headers": [*message["headers"], (b"set-cookie", b"affinity=a1")]}
            await send(message)

        await app(scope, receive, sending)

    return wrapped


async def test_cookies_are_read_only_from_answers_that_set_some(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard library's jar is asked only about an answer with a Set-Cookie header (before, about
    every answer: 20 times here), and still keeps that cookie for the next requests."""
    read: list[str] = []
    real_extract = http.cookiejar.CookieJar.extract_cookies

    def extract(self: http.cookiejar.CookieJar, response: Any, request: Any) -> None:
        read.append(request.get_full_url())
        real_extract(self, response, request)

    monkeypatch.setattr(http.cookiejar.CookieJar, "extract_cookies", extract)
    with serve_in_thread(setting_a_cookie(create_app(SimConfig(latency=0)))) as base:
        async with http_client(4) as client:
            await creates_and_downloads(client, base)
            assert read == []
            await client.get(base + "/v1/models")
            assert read == [base + "/v1/models"] and client.cookies.get("affinity") == "a1"


def redirecting(to: str) -> Asgi:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 302, "headers": [(b"location", to.encode())]})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_the_token_goes_only_to_the_api_host_even_through_a_redirect() -> None:
    seen: list[tuple[str, Any, str]] = []
    # "localhost" is another host than "127.0.0.1" for the client: the API redirects to a file host.
    with serve_in_thread(recording(create_app(SimConfig(latency=0)), seen)) as files:
        target = f"{files.replace('127.0.0.1', 'localhost')}/v1/models"
        with serve_in_thread(redirecting(target)) as api, pytest.raises(FluxBatchError):
            async with http_client(4) as http:  # the answer is not a prediction: only the headers matter
                await ApiClient(http, api + "/v1", "r8_secret").get("abc")
    assert [(path, auth) for path, _, auth in seen] == [("/v1/models", "")]


async def test_the_connection_limit_covers_every_prediction_in_flight() -> None:
    client = http_client(100)
    try:
        transport = client._transport
        assert isinstance(transport, Transport) and client.follow_redirects
        assert transport.limits.max_connections == 100 + HEADROOM
        session = transport.get_client()
        assert session.connector is not None and session.connector.limit == 100 + HEADROOM
        await session.close()
    finally:
        await client.aclose()
