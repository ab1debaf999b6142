"""The simulator as an ASGI app: routing, auth, throttling, request-level faults and statistics.

Mounted at ``/v1`` (Replicate style) and ``/replicate/v1`` (proxy style); output files under
``/delivery/``, event streams under ``/stream/``; ``GET /_simulator/stats`` and ``POST /_simulator/reset``
outside the API. In-process use::

    app = create_app(SimConfig(latency=0), clock=fake_clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/v1")
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flux_batch.simulator import views
from flux_batch.simulator.asgi import PROBLEM_JSON, Receive, Request, Response, Scope, Send, send_response
from flux_batch.simulator.catalog import catalog_with
from flux_batch.simulator.config import FaultSpec, SimConfig
from flux_batch.simulator.faults import FaultPlan, first
from flux_batch.simulator.files_api import FileHandlers
from flux_batch.simulator.handlers import Handlers, Sleep, not_found, problem
from flux_batch.simulator.models_api import ModelHandlers
from flux_batch.simulator.ratelimit import Metered, Throttle
from flux_batch.simulator.store import Store

logger = logging.getLogger(__name__)

PREFIXES = (("/replicate/v1", True), ("/v1", False))  # (mount, proxy style)
_MODEL = r"/models/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_ID = r"/predictions/(?P<id>[^/]+)"
#: (method, path pattern below the prefix, route template, endpoint name for faults, handler)
API_ROUTES: tuple[tuple[str, str, str, str, str], ...] = (
    ("POST", _MODEL + "/predictions", "/models/{owner}/{name}/predictions", "create", "predictions.create"),
    ("POST", r"/predictions", "/predictions", "create", "predictions.create"),
    ("GET", r"/predictions", "/predictions", "list", "predictions.list_predictions"),
    ("GET", _ID, "/predictions/{id}", "get", "predictions.get"),
    ("POST", _ID + "/cancel", "/predictions/{id}/cancel", "cancel", "predictions.cancel"),
    ("POST", r"/files", "/files", "upload", "files.create"),
    ("GET", r"/files", "/files", "file", "files.list_files"),
    ("GET", r"/files/(?P<id>[^/]+)", "/files/{id}", "file", "files.get"),
    ("DELETE", r"/files/(?P<id>[^/]+)", "/files/{id}", "file", "files.delete"),
    ("GET", r"/files/(?P<id>[^/]+)/download", "/files/{id}/download", "file", "files.download"),
    ("GET", _MODEL, "/models/{owner}/{name}", "model", "models.get"),
    ("GET", _MODEL + "/versions", "/models/{owner}/{name}/versions", "model", "models.versions"),
    (
        "GET",
        _MODEL + r"/versions/(?P<version>[^/]+)",
        "/models/{owner}/{name}/versions/{version}",
        "model",
        "models.version",
    ),
)
_COMPILED = tuple((m, re.compile(p + "$"), t, e, h) for m, p, t, e, h in API_ROUTES)
_OUTPUT = re.compile(r"^/delivery/(?P<id>[0-9a-z]+)/output_(?P<index>\d+)\.(?:png|jpg|webp)$")
OUTPUT_ROUTE = "/delivery/{id}/{file}"
_STREAM = re.compile(r"^/stream/(?P<id>[^/]+)$")
STREAM_ROUTE = "/stream/{id}"
Handler = Callable[[Request, dict[str, str], views.Style, list[FaultSpec]], Awaitable[Response]]


async def _real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class SimulatorApp:
    """The ASGI callable. ``stats()`` and ``reset()`` serve in-process tests without HTTP."""

    def __init__(
        self, config: SimConfig, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep: Sleep = sleep
        self.store = Store(config.seed, catalog_with(config.models))
        self.faults = FaultPlan(config.faults, config.seed)
        self.throttle = Throttle(config)
        self.handlers = Handlers(config, self.store, clock, sleep)
        groups = {
            "predictions": self.handlers,
            "files": FileHandlers(self.store, clock),
            "models": ModelHandlers(self.store),
        }
        self._dispatch: dict[str, Handler] = {}
        for *_, handler in API_ROUTES:
            group, _, method = handler.partition(".")
            self._dispatch[handler] = getattr(groups[group], method)
        self.requests: dict[str, dict[str, int]] = {}
        self.throttled = 0
        self.images_served = 0
        self._served_files: set[str] = set()  # output files answered 200 once (flaky_file spares them)

    # -- observability -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What happened so far: requests by route and status, predictions, duplicates, cost, faults."""
        now = self.clock()
        return {
            "requests": {route: dict(codes) for route, codes in self.requests.items()},
            "predictions_created": len(self.store.order),
            "predictions_by_status": self.store.counts(now),
            "duplicate_predictions": self.store.duplicates,
            "cost_usd": self.store.billed_usd(now),
            "throttled": self.throttled,
            "faults_fired": dict(self.faults.fired),
            "files_uploaded": len(self.store.files),
            "images_served": self.images_served,
        }

    def reset(self) -> None:
        """Forget every prediction, file, counter, limit and fault draw."""
        self.store.reset()
        self.faults.reset()
        self.throttle.reset()
        self.requests.clear()
        self.throttled = 0
        self.images_served = 0
        self._served_files.clear()

    def _count(self, route: str, status: int | str) -> None:
        codes = self.requests.setdefault(route, {})
        key = str(status)
        codes[key] = codes.get(key, 0) + 1

    # -- ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request.from_scope(scope, receive)
        path = request.path
        for prefix, proxy in PREFIXES:
            if path.startswith(prefix + "/"):
                await self._api(request, send, prefix, proxy)
                return
        match = _OUTPUT.match(path)
        stream = _STREAM.match(path)
        if match and request.method in ("GET", "HEAD"):
            await self._output(request, send, match.groupdict())
        elif stream and request.method == "GET":
            response = await self.handlers.stream(request, stream.groupdict())
            self._count(f"GET {STREAM_ROUTE}", response.status)
            await send_response(send, response)
        elif path == "/_simulator/stats" and request.method == "GET":
            await send_response(send, Response.json(200, self.stats()))
        elif path == "/_simulator/reset" and request.method == "POST":
            self.reset()
            await send_response(send, Response.json(200, {"reset": True}))
        else:
            await send_response(send, not_found())

    async def _api(self, request: Request, send: Send, prefix: str, proxy: bool) -> None:
        rest = request.path[len(prefix) :]
        route = None
        allowed = False
        for method, pattern, template, endpoint, handler in _COMPILED:
            match = pattern.match(rest)
            if match:
                allowed = True
                if method == request.method:
                    route = (template, endpoint, handler, match.groupdict())
                    break
        if route is None:
            status = 405 if allowed else 404
            self._count(
                f"{request.method} {prefix}{rest}" if allowed else f"{request.method} (no route)", status
            )
            await send_response(send, problem(status, "Method not allowed", "") if allowed else not_found())
            return
        template, endpoint, handler, params = route
        name = f"{request.method} {prefix}{template}"
        fired = self.faults.draw(endpoint)
        response, metered = await self._guard(request, endpoint, fired)
        if response is None:
            style = self._style(request, prefix, proxy)
            try:
                response = await self._dispatch[handler](request, params, style, fired)
            except Exception:  # a bug, never the client's input: still answer as the API would, in JSON
                logger.exception("simulator: %s failed", name)
                response = problem(500, "Internal server error", "The simulator failed on this request.")
        if metered is not None:
            response.headers.extend(metered.headers())
        self._count(name, "dropped" if response.drop else response.status)
        await send_response(send, response)

    async def _guard(
        self, request: Request, endpoint: str, fired: list[FaultSpec]
    ) -> tuple[Response | None, Metered | None]:
        """Faults that act before the endpoint, then auth and rate limits: a response (or None to go on),
        and what the rate limiter said (for the ``ratelimit-*`` headers)."""
        fault = _pre_fault(fired)
        if fault is not None and fault.kind != "slow":
            return _fault_response(fault, self.faults.draw_status), None
        if fault is not None:
            await self.sleep(fault.delay)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or (self.config.token is not None and token != self.config.token):
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token"), None
        late = first(fired, "unauthorized", "billing", "create_5xx")
        if late is not None:
            return _fault_response(late, self.faults.draw_status), None
        metered = self.throttle.check(token, endpoint == "create", self.clock())
        if metered is None or metered.refused is None:
            return None, metered
        self.throttled += 1
        refused = metered.refused
        response = Response.json(429, refused.body(self.config.rate_limit_body), PROBLEM_JSON)
        if self.config.retry_after_header:
            response.header("Retry-After", str(refused.retry_after))
        return response, metered

    def _style(self, request: Request, prefix: str, proxy: bool) -> views.Style:
        base = request.base_url
        files_base = (self.config.files_base_url or base).rstrip("/")
        if proxy:
            own = base + prefix if self.config.proxy_next == "proxy" else None
            return views.Style(views.REPLICATE_API, files_base, self.config.proxy_message, list_base=own)
        return views.Style(base + prefix, files_base, stream_base=base + "/stream")

    async def _output(self, request: Request, send: Send, params: dict[str, str]) -> None:
        file = f"{params['id']}/{params['index']}"
        fired = self.faults.draw("output", skip=("flaky_file",) if file in self._served_files else ())
        fault = _pre_fault(fired)
        response: Response | None = None
        if fault is not None and fault.kind == "slow":
            await self.sleep(fault.delay)
            fault = None
        fault = fault or first(fired, "flaky_file")
        if fault is not None:
            response = _fault_response(fault, self.faults.draw_status)
        if response is None:
            response = await self.handlers.output(request, params, fired)
            if response.status == 200:
                self.images_served += 1
                self._served_files.add(file)
        self._count(f"{request.method} {OUTPUT_ROUTE}", "dropped" if response.drop else response.status)
        await send_response(send, response)


def _pre_fault(fired: list[FaultSpec]) -> FaultSpec | None:
    """The request-level fault that acts first: a reset, else an HTML error page, else a delay."""
    return first(fired, "reset") or first(fired, "html_5xx") or first(fired, "slow")


def _fault_response(fault: FaultSpec, pick_status: Callable[[], int]) -> Response:
    if fault.kind == "reset":
        return Response(200, drop=True)
    if fault.kind == "html_5xx":
        status = fault.status or pick_status()
        return Response(status, views.html_error(status), "text/html")
    if fault.kind == "unauthorized":
        return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    if fault.kind == "billing":
        return problem(
            402,
            "Billing required",
            "You have insufficient credit to run this model. "
            "Go to https://replicate.com/account/billing to purchase credit.",
        )
    if fault.kind == "flaky_file" and fault.status == 404:
        return not_found()
    status = fault.status or 503
    return problem(status, "Service unavailable", "The service is temporarily unavailable; try again later.")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    config: SimConfig | None = None,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> SimulatorApp:
    """The simulator app. ``clock`` (epoch seconds, default ``time.time``) drives every lifecycle;
    ``sleep`` (default ``asyncio.sleep``) is what ``Prefer: wait`` and slow-response faults await, so a
    test can pass one that moves its fake clock instead of sleeping."""
    return SimulatorApp(config or SimConfig(), clock or time.time, sleep or _real_sleep)
