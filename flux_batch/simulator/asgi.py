"""Minimal ASGI plumbing for the simulator: a parsed request, a response value, and sending it.

The simulator speaks raw ASGI rather than through a framework so that its hot path (create and get) costs
a few microseconds of Python per request; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


class SimulatedDisconnect(httpx.RemoteProtocolError):
    """Raised by the app to drop the connection.

    In-process (``httpx.ASGITransport``) the client sees it as the transport error it is; served by
    uvicorn, the response has already started with a Content-Length, so the server closes the socket
    mid-response and the client sees the connection drop.
    """


@dataclass
class Request:
    """The parts of an HTTP request the simulator looks at."""

    scope: Scope
    receive: Receive
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    _body: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> Request:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        qs = scope.get("query_string", b"")
        query = dict(parse_qsl(qs.decode("latin-1"))) if qs else {}
        return cls(scope, receive, scope["method"], scope["path"], headers, query)

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]`` plus any root path, as the client addressed us."""
        host = self.headers.get("host")
        if not host:
            server = self.scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
        return f"{self.scope.get('scheme', 'http')}://{host}{self.scope.get('root_path', '')}"

    async def body(self) -> bytes:
        if self._body is None:
            chunks = []
            while True:
                message = await self.receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The JSON body; ValueError if it is not strict JSON (``NaN`` and ``Infinity`` are not JSON, and
        nesting deep enough to exhaust the parser's recursion is refused too)."""
        return loads_strict(await self.body() or b"null")


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` that refuses what is not JSON: ``NaN``/``Infinity``, and nesting so deep that the
    parser runs out of recursion. ValueError for anything it refuses."""
    try:
        return json.loads(data, parse_constant=_not_json)
    except RecursionError as exc:
        raise ValueError("the JSON is nested too deeply") from exc


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass
class Response:
    """A complete response. ``content_length`` overrides the header (to simulate a lying server)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_length: int | None = None
    drop: bool = False  # start the response, then drop the connection

    @classmethod
    def json(cls, status: int, data: Any, content_type: str = JSON) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), content_type)

    def header(self, name: str, value: str) -> Response:
        self.headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return self


async def send_response(send: Send, response: Response) -> None:
    """Send ``response``; for a drop, raise :class:`SimulatedDisconnect` after the start."""
    length = len(response.body) if response.content_length is None else response.content_length
    headers = [*response.headers]
    if response.status != 204:  # No Content has neither
        headers.append((b"content-type", response.content_type.encode("latin-1")))
        headers.append((b"content-length", str(max(length, 1) if response.drop else length).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.drop:
        raise SimulatedDisconnect("Server disconnected without sending a response.")
    try:
        await send({"type": "http.response.body", "body": response.body})
    except Exception as exc:
        # A server (uvicorn) refuses to end a body short of its Content-Length: that is the drop we want.
        if response.content_length is None or response.content_length == len(response.body):
            raise
        raise SimulatedDisconnect("peer closed connection without sending complete message body") from exc
