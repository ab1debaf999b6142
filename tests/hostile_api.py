"""A hostile Replicate-style API for tests: every answer can be made malicious, scenario by scenario.

    api = HostileApi(Scenario(files="404_first"))
    http = api.client()                       # in process, through httpx.ASGITransport
    with api.serve() as base_url: ...         # on loopback (uvicorn in a thread): the real transport

It knows just enough of the predictions API to run a batch end to end, under ``/v1`` only: create (both
routes, ``Prefer: wait``), get, cancel, list (newest first, ``PAGE_SIZE`` a page, an absolute ``next``), and
a file host for the outputs (``/files/<id>/<n>.png``, with no ``/v1``, as a CDN would be). A prediction
succeeds ``latency`` seconds (of its clock) after its create. Which answers are wrong is chosen by the
:class:`Scenario`; ``stats`` counts what the client asked (every path included, so a test can prove that a
hostile id never made it request another path).

The simulator (``flux_batch.simulator``) is the faithful API; this server is the unfaithful one, kept
separate so that its lies never leak into the product.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
from PIL import Image

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/v1"
PAGE_SIZE = 100
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

#: What a create can answer (besides "ok", a proper prediction):
CREATE_ANSWERS = (
    "null_status",  # 201 with "status": null
    "unknown_status",  # 201 with "status": "queued" (not a documented status)
    "int_created_at",  # 201 with "created_at": 1750000000 (a number, not a string)
    "no_id",  # 201 with a prediction object that has no id
    "malformed_json",  # 201 with a body cut in the middle of the JSON
    "no_content",  # 204, no body
    "json_array",  # 201 with a JSON array holding the prediction
    "slash_id",  # 201 with an id of "x/../../account" (another path of the API)
    "dotdot_id",  # 201 with an id of ".."
    "huge_id",  # 201 with a 200 kB id
    "drop",  # the prediction is made, then the connection drops before the answer: an ambiguous create
)


class Answer:
    """The ASGI ``send`` of one request, and a future that completes when the client hangs up."""

    def __init__(self, send: Send, hung_up: asyncio.Future[Any]) -> None:
        self._send = send
        self.hung_up = hung_up

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        await self._send(message)


class Disconnect(httpx.RemoteProtocolError):
    """Raised by the app to drop the connection: in process the client sees this transport error; served,
    the answer has begun with a Content-Length, so uvicorn closes the socket mid-answer."""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def png(size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A few-hundred-byte PNG that claims ``width x height`` pixels (900 megapixels by default): a
    decompression bomb. Its few rows of zeros are valid data; the rest is missing, which only a full decode
    would notice."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@dataclass
class Scenario:
    """What the server does wrong. Every field's default is an honest answer."""

    create: str = "ok"  # "ok", one of CREATE_ANSWERS, or "hold" (the Prefer: wait is held to its end)
    get: str = "ok"  # "ok", "trickle" (a byte every trickle_s), "huge" (huge_bytes of JSON)
    list: str = "ok"  # "ok", "endless" (every page has a new next), "unsupported" (404)
    files: str = "ok"  # "ok", "404_first" (each file's first request), "404_always", "bomb", "trickle"
    latency: float = 0.0  # seconds from create to succeeded
    retention: float | None = None  # seconds after completion the output is removed (data_removed)
    trickle_s: float = 0.2
    huge_bytes: int = 64 * 1024 * 1024
    endless_items: bool = True  # "endless": each page also holds a (non-matching) prediction in window


@dataclass
class Prediction:
    id: str
    model: str
    version: str | None
    input: dict[str, Any]
    created: float
    latency: float
    canceled_at: float | None = None

    def status(self, now: float) -> str:
        if self.canceled_at is not None:
            return "canceled"
        return "succeeded" if now >= self.created + self.latency else "processing"

    def completed(self, now: float) -> float | None:
        if self.canceled_at is not None:
            return self.canceled_at
        done = self.created + self.latency
        return done if now >= done else None


@dataclass
class Stats:
    creates: int = 0
    gets: int = 0
    lists: int = 0
    cancels: int = 0
    file_requests: int = 0
    paths: list[str] = field(default_factory=list)
    by_route: Counter[str] = field(default_factory=Counter)
    sent_bytes: int = 0  # bytes of huge or trickled bodies actually handed to the server


class HostileApi:
    """The server; an ASGI app. ``clock``/``sleep`` default to real time (inject a fake clock in-process)."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int = 7,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.clock = clock
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.predictions: dict[str, Prediction] = {}
        self.order: list[Prediction] = []
        self.stats = Stats()
        self._file_hits: Counter[str] = Counter()

    # -- ways to reach it -------------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` that talks to this app in process; its base URL is ``base_url``."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self))

    base_url = "http://hostile.test/v1"

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free loopback port (uvicorn, in a thread with its own loop); yields ``.../v1``."""
        import uvicorn

        config = uvicorn.Config(self, host="127.0.0.1", port=0, log_level="critical", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        give_up = time.monotonic() + 10
        while not (server.started and server.servers):
            assert time.monotonic() < give_up, "the hostile API did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}{PREFIX}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    # -- ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.stats.paths.append(f"{method} {path}")
        base = f"{scope.get('scheme', 'http')}://{headers.get('host', 'hostile.test')}"
        # The next message is the client hanging up: long answers stop there, as a real server's would.
        hung_up = asyncio.ensure_future(receive())
        try:
            await self._route(method, path, headers, query, body, base, Answer(send, hung_up))
        finally:
            hung_up.cancel()

    async def _route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        query: dict[str, str],
        body: bytes,
        base: str,
        send: Answer,
    ) -> None:
        parts = path.split("/")
        if path.startswith("/files/") and method == "GET":
            self.stats.by_route["file"] += 1
            return await self._file(path, send)
        if not path.startswith(PREFIX + "/"):
            self.stats.by_route["other"] += 1
            return await _json(send, 404, {"title": "Not found", "detail": "Not found", "status": 404})
        rest = parts[2:]
        if method == "POST" and (rest == ["predictions"] or (len(rest) == 4 and rest[0] == "models")):
            self.stats.by_route["create"] += 1
            return await self._create(rest, headers, body, base, send)
        if method == "GET" and rest == ["predictions"]:
            self.stats.by_route["list"] += 1
            return await self._list(query, base, send)
        if len(rest) == 2 and rest[0] == "predictions" and method == "GET":
            self.stats.by_route["get"] += 1
            return await self._get(rest[1], base, send)
        if len(rest) == 3 and rest[0] == "predictions" and rest[2] == "cancel" and method == "POST":
            self.stats.by_route["cancel"] += 1
            return await self._cancel(rest[1], base, send)
        self.stats.by_route["other"] += 1
        await _json(send, 404, {"title": "Not found", "detail": f"no route {method} {path}", "status": 404})

    # -- predictions --------------------------------------------------------------------------------------

    def new_id(self) -> str:
        return "".join(self.rng.choice(ID_ALPHABET) for _ in range(26))

    def view(self, p: Prediction, base: str) -> dict[str, Any]:
        now = self.clock()
        status = p.status(now)
        completed = p.completed(now)
        removed = (
            self.scenario.retention is not None
            and completed is not None
            and now >= completed + self.scenario.retention
        )
        output = None
        if status == "succeeded" and not removed:
            output = [f"{base}/files/{p.id}/0.png"]
        return {
            "id": p.id,
            "model": p.model,
            "version": p.version or "hidden",
            "input": p.input,
            "logs": "",
            "output": output,
            "data_removed": removed,
            "error": None,
            "status": status,
            "created_at": iso(p.created),
            "started_at": iso(p.created),
            "completed_at": iso(completed) if completed is not None else None,
            "urls": {
                "get": f"https://api.replicate.com/v1/predictions/{p.id}",
                "cancel": f"https://api.replicate.com/v1/predictions/{p.id}/cancel",
            },
            "metrics": {"predict_time": p.latency},
        }

    async def _create(
        self, rest: list[str], headers: dict[str, str], body: bytes, base: str, send: Send
    ) -> None:
        self.stats.creates += 1
        try:
            data = json.loads(body)
        except ValueError:
            return await _json(send, 400, {"title": "Invalid JSON", "status": 400})
        model = f"{rest[1]}/{rest[2]}" if rest[0] == "models" else str(data.get("version", ""))
        p = Prediction(
            self.new_id(), model, None, data.get("input") or {}, self.clock(), self.scenario.latency
        )
        self.predictions[p.id] = p
        self.order.append(p)
        wait = _prefer_wait(headers.get("prefer"))
        if wait:
            end = self.clock() + wait
            while p.status(self.clock()) == "processing" and self.clock() < end:
                await self.sleep(min(0.05, end - self.clock()))
        view = self.view(p, base)
        kind = self.scenario.create
        if kind == "ok" or kind == "hold":
            return await _json(send, 201, view)
        if kind == "null_status":
            return await _json(send, 201, {**view, "status": None})
        if kind == "unknown_status":
            return await _json(send, 201, {**view, "status": "queued"})
        if kind == "int_created_at":
            return await _json(send, 201, {**view, "created_at": int(p.created)})
        if kind == "no_id":
            return await _json(send, 201, {k: v for k, v in view.items() if k != "id"})
        if kind == "malformed_json":
            return await _raw(send, 201, json.dumps(view).encode()[:57], "application/json")
        if kind == "no_content":
            return await _raw(send, 204, b"", "application/json")
        if kind == "drop":
            await _start(send, 201, "application/json", 1000)
            raise Disconnect("the hostile API dropped the connection")
        if kind == "json_array":
            return await _json(send, 201, [view])
        bad_id = {"slash_id": f"{p.id}/../../account", "dotdot_id": "..", "huge_id": "x" * 200_000}[kind]
        return await _json(send, 201, {**view, "id": bad_id})

    async def _get(self, pid: str, base: str, send: Answer) -> None:
        self.stats.gets += 1
        p = self.predictions.get(pid)
        if p is None:
            return await _json(send, 404, {"title": "Not found", "detail": "Not found", "status": 404})
        body = json.dumps(self.view(p, base)).encode()
        if self.scenario.get == "trickle":
            return await self._trickle(send, body)
        if self.scenario.get == "huge":
            return await self._huge(send, body)
        await _raw(send, 200, body, "application/json")

    async def _cancel(self, pid: str, base: str, send: Send) -> None:
        self.stats.cancels += 1
        p = self.predictions.get(pid)
        if p is None:
            return await _json(send, 404, {"title": "Not found", "detail": "Not found", "status": 404})
        if p.status(self.clock()) == "processing":
            p.canceled_at = self.clock()
        await _json(send, 200, self.view(p, base))

    async def _list(self, query: dict[str, str], base: str, send: Send) -> None:
        self.stats.lists += 1
        if self.scenario.list == "unsupported":
            return await _json(send, 404, {"title": "Not found", "detail": "Not found", "status": 404})
        cursor = int(query.get("cursor", "0") or 0)
        if self.scenario.list == "endless":
            results = []
            if self.scenario.endless_items:  # a prediction in the window that matches nothing
                stranger = Prediction(self.new_id(), "someone/else", None, {"n": cursor}, self.clock(), 0.0)
                results = [self.view(stranger, base)]
            page = {
                "next": f"{base}{PREFIX}/predictions?cursor={cursor + 1}",
                "previous": None,
                "results": results,
            }
            return await _json(send, 200, page)
        after = _epoch(query.get("created_after"))
        before = _epoch(query.get("created_before"))
        found = [
            p
            for p in reversed(self.order)
            if (after is None or p.created >= after) and (before is None or p.created < before)
        ]
        chunk = found[cursor : cursor + PAGE_SIZE]
        nxt = None
        if cursor + PAGE_SIZE < len(found):
            nxt = f"{base}{PREFIX}/predictions?cursor={cursor + PAGE_SIZE}"
            if after is not None:
                nxt += f"&created_after={query['created_after']}"
            if before is not None:
                nxt += f"&created_before={query['created_before']}"
        await _json(
            send, 200, {"next": nxt, "previous": None, "results": [self.view(p, base) for p in chunk]}
        )

    # -- files --------------------------------------------------------------------------------------------

    async def _file(self, path: str, send: Answer) -> None:
        self.stats.file_requests += 1
        self._file_hits[path] += 1
        pid = path.split("/")[2]
        p = self.predictions.get(pid)
        kind = self.scenario.files
        gone = p is None or self.view(p, "")["output"] is None
        if gone or kind == "404_always" or (kind == "404_first" and self._file_hits[path] == 1):
            return await _raw(send, 404, b"<html><body>Not Found</body></html>", "text/html")
        if kind == "bomb":
            return await _raw(send, 200, bomb_png(), "image/png")
        data = png(color=(len(pid) * 7 % 256, 99, 180))
        if kind == "trickle":
            return await self._trickle(send, data, "image/png")
        await _raw(send, 200, data, "image/png")

    # -- hostile bodies -----------------------------------------------------------------------------------

    async def _trickle(self, send: Answer, body: bytes, content_type: str = "application/json") -> None:
        """The body one byte at a time, ``trickle_s`` apart: every read sees progress, none times out."""
        await _start(send, 200, content_type, len(body))
        for i in range(len(body)):
            if send.hung_up.done():
                return
            await send({"type": "http.response.body", "body": body[i : i + 1], "more_body": True})
            self.stats.sent_bytes += 1
            await self.sleep(self.scenario.trickle_s)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _huge(self, send: Answer, body: bytes) -> None:
        """A valid prediction whose ``logs`` hold ``huge_bytes`` of text, sent in 1 MiB pieces."""
        head, tail = body[:-1], b', "padding": "'
        piece = b"x" * (1024 * 1024)
        total = len(head) + len(tail) + self.scenario.huge_bytes + 2
        await _start(send, 200, "application/json", total)
        await send({"type": "http.response.body", "body": head + tail, "more_body": True})
        for _ in range(self.scenario.huge_bytes // len(piece)):
            if send.hung_up.done():
                return
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0)  # let the hang-up be noticed
            self.stats.sent_bytes += len(piece)
        await send({"type": "http.response.body", "body": b'"}', "more_body": False})


def _prefer_wait(header: str | None) -> float | None:
    if not header or not header.strip().startswith("wait"):
        return None
    _, _, n = header.partition("=")
    return float(n) if n.strip() else 60.0


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _start(send: Send, status: int, content_type: str, length: int | None) -> None:
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _raw(send: Send, status: int, body: bytes, content_type: str) -> None:
    await _start(send, status, content_type, len(body))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _json(send: Send, status: int, data: Any) -> None:
    await _raw(send, status, json.dumps(data).encode(), "application/json")
