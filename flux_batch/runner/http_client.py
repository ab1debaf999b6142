"""The HTTP client of real runs: an ``httpx.AsyncClient`` whose transport is aiohttp (``httpx-aiohttp``).

Why: httpx stays the API every module is written against (requests, streams, timeouts, redirects, the
tests' in-process transports), but its own transport, httpcore, cost 3-4 ms of CPU for a job's two requests
(a create held by ``Prefer: wait`` and the download) where aiohttp costs about a tenth of that, and its pool
rescanned every connection on each request (see docs/benchmarks.md). aiohttp's connector keeps every
idle connection alive (up to ``limit``) and needs no sharding.

What this module adds to ``httpx_aiohttp.AiohttpTransport``:

- **Honest errors.** httpx-aiohttp maps any ``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``,
  so a connection dropped after a create was sent would read as "never sent", and the create would be
  repeated: paid twice. Here only a failure to open the connection (refused, DNS, TLS handshake, connect
  timeout) is a ``ConnectError``/``ConnectTimeout``; everything after it is a read, write or protocol error,
  which the API client treats as "may have reached the server" (an ambiguous create).
- **No request on a connection the server has closed.** aiohttp reuses the idle connection idle the longest
  and trusts the event loop to have seen the server's close; on a busy machine the loop lags, and creates
  went out on connections the server had closed after its keep-alive timeout (323 of 1,500 creates
  ambiguous at load average 13, each settled by listing; httpcore, which checks the socket, had 1). Here
  the most recently used idle connection is taken, and only if its socket has nothing to read (a
  server's close is something to read); it is the check httpcore makes.
- **No second cookie jar.** httpx keeps the cookies; aiohttp's session is given a dummy jar. httpx reads
  an answer's cookies only when it sets some (:class:`_Cookies`).
- **The connection limit** (``max_connections``) covers every prediction in flight plus ``HEADROOM``.

TLS is httpx's own context (``httpx.create_ssl_context``): the system's store, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` (how a user trusts the simulator's ``--tls`` authority).
"""

from __future__ import annotations

import select
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: Connections beyond the in-flight ceiling: downloads, polls and uploads beside the waiting creates.
HEADROOM = 20
#: Seconds an idle connection is kept; below the 5 s of common servers (uvicorn's default), so that the
#: client, not the server, closes it, and a request is never sent on a connection being closed.
KEEPALIVE_S = 4.0


def translate(exc: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp failure (or for httpx-aiohttp's mapping of one): "could not
    connect" only when no byte of the request can have left."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ else exc
    text = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text)
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake, certificate
        return httpx.ConnectError(text)
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text)
    if isinstance(cause, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return httpx.ReadError(text)
    if isinstance(cause, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return httpx.UnsupportedProtocol(text)
    if isinstance(exc, httpx.TransportError) and not isinstance(
        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    ):
        return exc
    # A server that hung up, a malformed answer, anything else: the request may have arrived.
    return httpx.RemoteProtocolError(text)


class _Body(httpx.AsyncByteStream):
    """An answer's body whose failures are read errors (the answer had begun: the request arrived)."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            raise httpx.ReadError(str(exc.__cause__ or exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


def _readable(proto: Any) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it (or sent what it
    should not have). Either way it must not carry a request."""
    transport = getattr(proto, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return True
    try:
        fd = sock.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, handing out the most recently used idle connection that the server has not
    closed (the rest age out after ``keepalive_timeout``).

    aiohttp has no public hook for this: it reorders aiohttp 3's idle list (``_conns``: a deque per host of
    ``(protocol, released_at)``, taken from the left) before aiohttp's own ``_get`` takes from it; a list of
    another shape is left alone. tests/test_runner_http_client.py fails if the check stops working."""

    async def _get(self, key: Any, traces: Any) -> Any:
        idle = getattr(self, "_conns", {}).get(key)
        if isinstance(idle, deque):
            while idle:
                proto, released = idle.pop()  # the newest
                if proto.is_connected() and not _readable(proto):
                    idle.appendleft((proto, released))  # where aiohttp takes the next one from
                    break
                proto.close()
        return await super()._get(key, traces)


class Transport(AiohttpTransport):
    """httpx-aiohttp's transport with flux-batch's error translation and session settings."""

    def get_client(self) -> aiohttp.ClientSession:
        connector = _Connector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry or KEEPALIVE_S,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            raise translate(exc) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Body(response.stream)  # in place: a second Response would copy the headers
        return response


class _Cookies(httpx.Cookies):
    """httpx's cookies, read from an answer only when it has a ``Set-Cookie`` (or ``Set-Cookie2``) header,
    the only headers the standard library's jar reads: for every answer httpx otherwise builds a urllib
    request and response for that jar to find nothing (3.6 % of the runner's event loop at 6,000 creates a
    minute, profiled). tests/test_runner_http_client.py fails if httpx stops using it."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def http_client(max_in_flight: int) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` that ``flux-batch run`` uses against a real API or a served simulator:
    room for ``max_in_flight`` held creates plus ``HEADROOM``, idle connections kept ``KEEPALIVE_S``."""
    total = max(1, max_in_flight) + HEADROOM
    limits = httpx.Limits(
        max_connections=total, max_keepalive_connections=total, keepalive_expiry=KEEPALIVE_S
    )
    client = httpx.AsyncClient(transport=Transport(limits=limits), follow_redirects=True)
    client._cookies = _Cookies()  # httpx has no public way to give a client its Cookies object
    return client
