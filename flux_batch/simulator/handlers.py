"""The simulator's prediction endpoints: create, get, cancel, list; output downloads and event streams.

Each handler takes the parsed request and what the router learnt (path parameters, response style, the
faults that fired) and returns a :class:`Response`. Auth, throttling and request-level faults happen in
:mod:`flux_batch.simulator.app` before a handler runs. The files API is in :mod:`.files_api`, the models
API in :mod:`.models_api`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

from flux_batch.durations import parse_duration
from flux_batch.models import catalog as models
from flux_batch.simulator import views
from flux_batch.simulator.asgi import PROBLEM_JSON, Request, Response
from flux_batch.simulator.config import FaultSpec, SimConfig
from flux_batch.simulator.faults import first
from flux_batch.simulator.images import render
from flux_batch.simulator.store import CONTENT_FILTER_ERROR, TERMINAL, Prediction, Store, image_size
from flux_batch.timestamps import epoch_seconds

CREATE_FIELDS = frozenset({"input", "version", "webhook", "webhook_events_filter", "stream"})
PAGE_SIZE = 100
MIN_CANCEL_AFTER = 5.0
MAX_CANCEL_AFTER = 10 * 365 * 86400.0  # the simulator's own bound (so a deadline is always a real date)
WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
WAIT_STEP = 0.5  # while holding a Prefer: wait request, look again this often (to see cancels)
_PREFER = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")
_OUTPUT = re.compile(r"/delivery/(?P<id>[0-9a-z]+)/output_(?P<i>\d+)\.\w+$")
_FILE = re.compile(r"/files/(?P<id>[0-9a-z]+)(?:/download)?$")

Sleep = Callable[[float], Awaitable[None]]


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response.json(status, views.problem(status, title, detail, **extra), PROBLEM_JSON)


def not_found(detail: str = "The requested resource could not be found.") -> Response:
    return problem(404, "Not found", detail)


class Handlers:
    """The endpoint logic over one :class:`Store`, clock and sleep."""

    def __init__(self, config: SimConfig, store: Store, clock: Callable[[], float], sleep: Sleep) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.sleep = sleep

    # -- predictions ---------------------------------------------------------------------------------

    async def create(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "Invalid JSON", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return problem(422, "Invalid request", "The request body must be a JSON object.")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            return problem(422, "Invalid request", f"Additional property {unknown[0]} is not allowed")
        wrong = _optional_fields_problem(body)
        if wrong:
            return problem(422, "Invalid request", wrong)
        input = body.get("input")
        if not isinstance(input, dict):
            return problem(422, "Input validation failed", "- input: Invalid type. Expected: object\n")
        resolved = self._model(params, body)
        if isinstance(resolved, Response):
            return resolved
        spec, version = resolved
        errors = [p for p in models.check_input(spec, input) if p.severity == "error"]
        if errors:
            return Response.json(
                422, views.invalid_input([(p.path, p.message) for p in errors]), PROBLEM_JSON
            )
        deadline_after = _cancel_after(request.headers.get("cancel-after"))
        if isinstance(deadline_after, Response):
            return deadline_after
        now = self.clock()
        mean = self.config.latency
        if self.config.typical_latency and spec.typical_s is not None:
            mean = spec.typical_s
        latency = self.store.sample_latency(mean)
        spike = first(fired, "latency_spike")
        if spike:
            latency *= spike.factor
        prediction = self.store.create(
            spec,
            version,
            input,
            now,
            latency=latency,
            failed_error=CONTENT_FILTER_ERROR if first(fired, "content_filter") else None,
            deadline=None if deadline_after is None else now + deadline_after,
            input_sizes=self._input_sizes(input, spec.image_inputs),
        )
        ambiguous = first(fired, "ambiguous_create")
        if ambiguous:
            if ambiguous.mode == "drop":
                return Response(201, drop=True)
            return problem(
                ambiguous.status or 502, "Bad gateway", "The upstream server did not answer in time."
            )
        wait = _prefer_wait(request.headers.get("prefer"), self.config.max_wait)
        response_status = 201
        if wait is not None:
            status = await self._hold(prediction, wait)
            response_status = 201 if status in TERMINAL else 202
        response = Response.json(
            response_status, views.prediction_json(prediction, self.clock(), style, self.config.retention)
        )
        if wait is not None:
            response.header("Preference-Applied", f"wait={wait:g}")
        return response

    def _model(
        self, params: Mapping[str, str], body: Mapping[str, Any]
    ) -> tuple[models.ModelSpec, str] | Response:
        """The model and version a create names: by path (official model, version ``hidden``) or by the
        ``version`` field in any form the API takes: ``owner/name``, ``owner/name:<64 hex>``, ``<64 hex>``.
        """
        if "owner" in params:
            name, version = f"{params['owner']}/{params['name']}", "hidden"
        else:
            ref = body.get("version")
            if not isinstance(ref, str) or not ref:
                return problem(422, "Invalid version", "- version: version is required\n")
            if models.VERSION_ID.match(ref):
                known = self.store.version_model(ref)
                if known is None:
                    return problem(422, "Invalid version", f"Invalid version or not permitted: {ref}")
                return known.spec, ref
            try:
                name, hex_version = models.split_ref(ref)
            except ValueError:
                return problem(422, "Invalid version", f"Invalid version or not permitted: {ref}")
            version = hex_version or "hidden"
        model = self.store.catalog.by_name.get(name)
        if model is None:
            return not_found(f"Model {name} does not exist, or you do not have access to it.")
        if version != "hidden":
            pinned = self.store.version_model(version)
            if pinned is not None and pinned is not model:
                return problem(422, "Invalid version", f"Invalid version or not permitted: {body['version']}")
            self.store.pin_version(version, model)
        return model.spec, version

    def _input_sizes(self, input: Mapping[str, Any], names: tuple[str, ...]) -> list[tuple[int, int] | None]:
        """The size of every input image, in order (a list input's items in turn): known when the
        simulator itself served it (an output or an upload) or it came as a ``data:`` URI, else None."""
        urls: list[Any] = []
        for name in names:
            value = input.get(name)
            urls.extend(value if isinstance(value, list) else [value] if value else [])
        return [self._image_size(url) for url in urls]

    def _image_size(self, url: Any) -> tuple[int, int] | None:
        if not isinstance(url, str):
            return None
        if url.startswith("data:"):
            return image_size(_data_uri_bytes(url))
        path = urlsplit(url).path
        match = _OUTPUT.search(path)
        if match:
            p = self.store.predictions.get(match["id"])
            i = int(match["i"])
            if p is not None and i < len(p.images):
                return p.images[i].width, p.images[i].height
        match = _FILE.search(path)
        if match and match["id"] in self.store.files:
            return self.store.files[match["id"]].image_size()
        return None

    async def _hold(self, prediction: Prediction, wait: float) -> str:
        """Hold a ``Prefer: wait`` request until the prediction ends or ``wait`` seconds pass."""
        end = self.clock() + wait
        while True:
            now = self.clock()
            status = prediction.state(now)[0]
            if status in TERMINAL or now >= end:
                return status
            next_event = min(end, prediction.done, prediction.deadline or end)
            await self.sleep(min(max(next_event - now, 0.001), WAIT_STEP))

    async def get(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        prediction = self.store.predictions.get(params["id"])
        if prediction is None:
            return not_found()
        return Response.json(
            200, views.prediction_json(prediction, self.clock(), style, self.config.retention)
        )

    async def cancel(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        prediction = self.store.predictions.get(params["id"])
        if prediction is None:
            return not_found()
        now = self.clock()
        self.store.cancel(prediction, now)
        return Response.json(200, views.prediction_json(prediction, now, style, self.config.retention))

    async def list_predictions(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        if not self.config.list_supported:
            return not_found()
        query = request.query
        try:
            after = _parse_time(query.get("created_after"))
            before = _parse_time(query.get("created_before"))
            cursor = decode_cursor(query.get("cursor"))
        except ValueError as exc:
            return problem(400, "Invalid query", str(exc))
        source = query.get("source")
        if source not in (None, "web", "api"):
            return problem(400, "Invalid query", f"source must be 'web', not {source!r}")
        if source == "web":  # every simulated prediction came from the API
            return Response.json(200, views.page_json([], None, None))
        page, next_seq = self.store.page(
            before_seq=cursor, created_after=after, created_before=before, limit=PAGE_SIZE
        )
        now = self.clock()
        results = [views.prediction_json(p, now, style, self.config.retention) for p in page]
        next_url = None
        if next_seq is not None:
            kept = {k: v for k, v in query.items() if k in ("created_after", "created_before")}
            query_text = urlencode({**kept, "cursor": encode_cursor(next_seq)})
            next_url = f"{style.list_base or style.api_base}/predictions?{query_text}"
        return Response.json(200, views.page_json(results, next_url, None))

    async def output(self, request: Request, params: Mapping[str, str], fired: list[FaultSpec]) -> Response:
        """An output image; 404 until the prediction succeeded and after its retention."""
        prediction = self.store.predictions.get(params["id"])
        index = int(params["index"])
        if prediction is None or index >= len(prediction.images):
            return not_found()
        now = self.clock()
        status, _, completed = prediction.state(now)
        if status != "succeeded" or completed is None or now >= completed + self.config.retention:
            return not_found()
        spec = prediction.images[index]
        data = render(spec)
        if first(fired, "truncated_download"):
            return Response(200, data[: len(data) // 2], spec.content_type)
        if first(fired, "wrong_length"):
            return Response(200, data[: len(data) // 2], spec.content_type, content_length=len(data))
        return Response(200, data, spec.content_type)

    async def stream(self, request: Request, params: Mapping[str, str]) -> Response:
        """``urls.stream``: the prediction's server-sent events (logs, each output, then done), sent once
        the prediction has ended. No token, like Replicate's stream URLs."""
        prediction = self.store.predictions.get(params["id"])
        if prediction is None:
            return not_found()
        status = await self._hold(prediction, max(prediction.done - self.clock(), 0.0) + WAIT_STEP)
        now = self.clock()
        events = [("logs", line) for line in prediction.logs(status, now).splitlines()]
        style = views.Style(request.base_url, (self.config.files_base_url or request.base_url).rstrip("/"))
        if status == "succeeded":
            events += [
                ("output", views.output_url(style, prediction, i)) for i, _ in enumerate(prediction.images)
            ]
            events.append(("done", "{}"))
        elif status == "failed":
            events.append(("error", json.dumps({"detail": prediction.error})))
            events.append(("done", json.dumps({"reason": "error"})))
        else:
            events.append(("done", json.dumps({"reason": "canceled"})))
        body = "".join(f"event: {name}\nid: {i}\ndata: {data}\n\n" for i, (name, data) in enumerate(events))
        return Response(200, body.encode(), "text/event-stream").header("Cache-Control", "no-store")


def _optional_fields_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with a create body's optional fields, as a 422 detail line, or None."""
    if "webhook" in body and not isinstance(body["webhook"], str):
        return "- webhook: Invalid type. Expected: string\n"
    if "webhook_events_filter" in body:
        events = body["webhook_events_filter"]
        known = isinstance(events, list) and all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events)
        if not known:
            return "- webhook_events_filter: must be a list of start, output, logs, completed\n"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "- stream: Invalid type. Expected: boolean\n"
    return None


def _prefer_wait(header: str | None, max_wait: float) -> float | None:
    if not header:
        return None
    match = _PREFER.match(header)
    if not match:
        return None
    seconds = float(match[1]) if match[1] else 60.0
    if not 1 <= seconds <= 60:
        return None
    return min(seconds, max_wait)


def _cancel_after(header: str | None) -> float | Response | None:
    if header is None:
        return None
    try:
        seconds = parse_duration(header)
    except ValueError as exc:
        return problem(422, "Invalid Cancel-After", str(exc))
    if seconds < MIN_CANCEL_AFTER:
        return problem(422, "Invalid Cancel-After", f"Cancel-After must be at least 5s, not {header}")
    if not seconds <= MAX_CANCEL_AFTER:
        return problem(422, "Invalid Cancel-After", f"Cancel-After must be at most 10 years, not {header}")
    return seconds


def _parse_time(text: str | None) -> float | None:
    """A list filter's date-time (any number of fraction digits, ``Z`` or an offset) -> epoch seconds."""
    return epoch_seconds(text) if text else None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq={seq}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        if raw.startswith("seq="):
            return int(raw[4:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValueError(f"invalid cursor {text!r}")


def _data_uri_bytes(uri: str) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded); empty when malformed."""
    header, _, payload = uri.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return b""
