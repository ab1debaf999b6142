"""The simulator's endpoints: create, get, cancel, list, files and output downloads.

Each handler takes the parsed request and what the router learnt (path parameters, response style, the
faults that fired) and returns a :class:`Response`. Auth, throttling and request-level faults happen in
:mod:`flux_batch.simulator.app` before a handler runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

from flux_batch import models
from flux_batch.durations import parse_duration
from flux_batch.simulator import views
from flux_batch.simulator.asgi import PROBLEM_JSON, Request, Response
from flux_batch.simulator.config import FaultSpec, SimConfig
from flux_batch.simulator.faults import first
from flux_batch.simulator.images import render
from flux_batch.simulator.store import CONTENT_FILTER_ERROR, TERMINAL, Prediction, Store

CREATE_FIELDS = frozenset({"input", "version", "webhook", "webhook_events_filter", "stream"})
PAGE_SIZE = 100
MIN_CANCEL_AFTER = 5.0
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
        latency = self.store.sample_latency(self.config.latency)
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
            input_size=self._input_size(input) if "input_image" in spec.image_inputs else None,
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
        if "owner" in params:
            name, version = f"{params['owner']}/{params['name']}", "hidden"
        else:
            ref = body.get("version")
            if not isinstance(ref, str) or not ref:
                return problem(422, "Invalid version", "- version: version is required\n")
            if models.VERSION_ID.match(ref):
                return problem(422, "Invalid version", "Invalid version or not permitted")
            try:
                name, hex_version = models.split_ref(ref)
            except ValueError:
                return problem(422, "Invalid version", f"Invalid version or not permitted: {ref}")
            version = hex_version or "hidden"
        spec = models.known_models().get(name)
        if spec is None:
            return not_found(f"Model {name} does not exist, or you do not have access to it.")
        return spec, version

    def _input_size(self, input: Mapping[str, Any]) -> tuple[int, int] | None:
        """The size of an input image the simulator itself served (an output or an upload), else None."""
        url = input.get("input_image")
        if not isinstance(url, str):
            return None
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
            cursor = _decode_cursor(query.get("cursor"))
        except ValueError as exc:
            return problem(400, "Invalid query", str(exc))
        page, next_seq = self.store.page(
            before_seq=cursor, created_after=after, created_before=before, limit=PAGE_SIZE
        )
        now = self.clock()
        results = [views.prediction_json(p, now, style, self.config.retention) for p in page]
        next_url = None
        if next_seq is not None:
            kept = {k: v for k, v in query.items() if k in ("created_after", "created_before")}
            next_url = (
                f"{style.api_base}/predictions?{urlencode({**kept, 'cursor': _encode_cursor(next_seq)})}"
            )
        return Response.json(200, views.page_json(results, next_url, None))

    # -- files ---------------------------------------------------------------------------------------

    async def upload(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        from starlette.requests import Request as StarletteRequest  # only uploads need multipart parsing

        form = await StarletteRequest(request.scope, request.receive).form()
        content = form.get("content")
        if content is None or isinstance(content, str):
            return problem(422, "Invalid request", "- content: a file is required\n")
        data = await content.read()
        name = str(form.get("filename") or content.filename or "file")
        content_type = str(form.get("type") or content.content_type or "application/octet-stream")
        try:
            metadata = json.loads(str(form.get("metadata") or "{}"))
        except ValueError:
            return problem(422, "Invalid request", "- metadata: must be a JSON object\n")
        file = self.store.upload(
            name, content_type, data, self.clock(), metadata if isinstance(metadata, dict) else {}
        )
        return Response.json(201, views.file_json(file, style))

    async def file(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        """``GET /files/{id}``: the bytes; the file object with ``Accept: application/json``."""
        file = self.store.files.get(params["id"])
        if file is None:
            return not_found("File not found")
        if request.path.endswith("/download") or "application/json" not in request.headers.get("accept", ""):
            return Response(200, file.data, file.content_type)
        return Response.json(200, views.file_json(file, style))

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
    return seconds


def _parse_time(text: str | None) -> float | None:
    """ISO 8601 (``Z`` or an offset, any number of fraction digits) -> epoch seconds."""
    if not text:
        return None
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", text.strip()
    )
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    stamp = datetime.fromisoformat(match[1].replace(" ", "T")).replace(tzinfo=timezone.utc)
    zone, offset = match[3] or "Z", 0
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = (1 if zone[0] == "+" else -1) * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return stamp.timestamp() - offset + float(f"0.{match[2] or 0}")


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq={seq}".encode()).decode().rstrip("=")


def _decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        if raw.startswith("seq="):
            return int(raw[4:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValueError(f"invalid cursor {text!r}")
