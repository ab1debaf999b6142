"""The Replicate predictions API client: one injected ``httpx.AsyncClient``, errors translated at the edge.

Every URL is built from the configured base URL (``https://api.replicate.com/v1``, a proxy's
``https://proxy.example/replicate/v1``, or the simulator's) and a prediction id, never from the ``urls``
of a response: proxies point those at api.replicate.com. httpx exceptions and HTTP error statuses leave
this module as :mod:`flux_batch.errors` classes; a timeout or a dropped connection says whether the
request may have reached the server (``TransportError.sent``), which is what makes a create ambiguous.
The client counts its calls by kind for the run summary.

Nothing an answer says is trusted further than it must be: every call has an overall deadline (a server
trickling a byte at a time never holds a job), answers are read as a stream and refused past
``MAX_ANSWER_BYTES``, prediction ids must be made of the API's id alphabet before they go into a URL, a
file name or the state, and a ``next`` chain ends after ``MAX_LIST_PAGES`` pages, each of which waits
for the caller's limiter.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from flux_batch import __version__, defaults
from flux_batch.errors import (
    ApiError,
    AuthError,
    BillingError,
    InvalidInputError,
    ListingError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnknownStatusError,
)
from flux_batch.jobs.status import PREDICTION_TERMINAL
from flux_batch.runner.deadline import within
from flux_batch.runner.prediction_id import valid_id

RUNNING = frozenset({"starting", "processing"})
TERMINAL = PREDICTION_TERMINAL
#: The most output files a prediction may have (FLUX makes at most 4).
MAX_OUTPUTS = 64
_RESETS_IN = re.compile(r"~\s*(\d+(?:\.\d+)?)\s*s")
#: "Your rate limit for creating predictions is reduced to 6 requests per minute with a burst of 1 ..."
_REDUCED_TO = re.compile(r"reduced to (\d+(?:\.\d+)?) requests per minute")
#: The largest API answer read. A prediction is a few kB; this leaves room for ``data:`` URI outputs (a
#: sync-mode PNG is a few MB as base64) and refuses the rest before it fills the memory.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: Every API call's overall deadline, on top of the time a create may hold for ``Prefer: wait``.
CALL_DEADLINE_S = 90.0
#: A search for an ambiguous create's prediction reads at most this many pages of 100 (a window holds a
#: page or two in practice); an endless ``next`` chain ends here.
MAX_LIST_PAGES = 100
#: The longest text kept from an answer (an error message, a timestamp) in the state and the CSV.
_MAX_TEXT = 2000
#: Headers describing the body as sent; the buffered copy of an answer holds it decoded.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Prediction:
    """The fields of a prediction that flux-batch uses. ``output`` is as the API sent it."""

    id: str
    status: str
    model: str | None = None
    version: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    data_removed: bool = False
    created_at: str | None = None
    completed_at: str | None = None
    predict_time: float | None = None
    #: The megapixels the API billed, where it says (FLUX.2's metrics): all input images, all outputs.
    input_mp: float | None = None
    output_mp: float | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def output_urls(self) -> tuple[str, ...]:
        """The output as a tuple of URLs (one string, or a list of them); ProtocolError for anything else."""
        out = self.output
        if out is None:
            return ()
        if isinstance(out, str):
            out = [out]
        if isinstance(out, list) and len(out) <= MAX_OUTPUTS and all(isinstance(u, str) for u in out):
            return tuple(out)
        raise ProtocolError(f"prediction {self.id}: output is not a URL or a list of URLs: {str(out)[:120]}")


def checked_id(value: str) -> str:
    """A prediction id read back from the state, checked before it goes into a URL."""
    if valid_id(value) is None:
        raise ProtocolError(f"{value[:80]!r} is not a prediction id; refusing to use it in a request")
    return value


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> float | None:
    """A finite number >= 0 (a negative or absurd count from a broken answer is ignored)."""
    number = _seconds(value)
    return number if number is not None and 0 <= number <= 10_000 else None


def _time(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 64 else None


def parse_prediction(body: Any, *, strict: bool = True) -> Prediction:
    """A :class:`Prediction` from a decoded response body; ProtocolError if it is not one.

    Only the id must be right (a usable id, see :mod:`flux_batch.runner.prediction_id`); any other field
    of the wrong type is read as missing. ``strict``: an undocumented status raises UnknownStatusError
    (polling); otherwise (a create's answer, a listed prediction) it reads as ``starting``, to be polled
    like any other.
    """
    if not isinstance(body, Mapping):
        raise ProtocolError(f"expected a prediction object, got: {str(body)[:160]}")
    pid = valid_id(body.get("id"))
    if pid is None:
        raise ProtocolError(f"the answer has no usable prediction id (id: {str(body.get('id'))[:80]!r})")
    status = body.get("status")
    if status not in RUNNING and status not in TERMINAL:
        if strict:
            raise UnknownStatusError(
                f"prediction {pid} has an unknown status {str(status)[:40]!r}, which flux-batch does not know"
            )
        status = "starting"
    metrics = body.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    predict_time = _seconds(metrics.get("predict_time"))
    inp = body.get("input")
    return Prediction(
        id=pid,
        status=str(status),
        model=_text(body.get("model"), 200) if isinstance(body.get("model"), str) else None,
        version=_text(body.get("version"), 200) if isinstance(body.get("version"), str) else None,
        input=inp if isinstance(inp, Mapping) else {},
        output=body.get("output"),
        error=_text(body.get("error")),
        data_removed=body.get("data_removed") is True,
        created_at=_time(body.get("created_at")),
        completed_at=_time(body.get("completed_at")),
        predict_time=predict_time,
        input_mp=_count(metrics.get("image_input_megapixel_count")),
        output_mp=_count(metrics.get("image_output_megapixel_count")),
    )


def retry_after_seconds(response: httpx.Response, body: Any, *, now: float) -> float | None:
    """The server's wait hint for a 429, in the order: ``Retry-After`` header (seconds or an HTTP date),
    the body's ``retry_after``, the ``~Ns`` in ``detail``. None if there is none. ``now`` is wall time."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now)
    if isinstance(body, Mapping):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return max(0.0, float(value))
        match = _RESETS_IN.search(str(body.get("detail") or ""))
        if match:
            return float(match.group(1))
    return None


def stated_limit_rpm(detail: str) -> float | None:
    """The lower create limit a 429's ``detail`` says applies now (low-credit accounts), or None."""
    match = _REDUCED_TO.search(detail)
    rpm = float(match.group(1)) if match else 0.0
    return rpm if rpm > 0 else None


def _describe(response: httpx.Response, body: Any) -> str:
    if isinstance(body, Mapping):
        detail = body.get("detail") or body.get("title") or body.get("error")
        if detail:
            return str(detail)
    text = " ".join(response.text.split())
    if text.lower().startswith(("<!doctype", "<html")):
        return f"HTTP {response.status_code} (an HTML error page)"
    return text[:200] or f"HTTP {response.status_code}"


def error_for(response: httpx.Response, *, now: float) -> ApiError:
    """The :mod:`flux_batch.errors` exception for an HTTP error response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code = response.status_code
    detail = _describe(response, body)
    what = f"{response.request.method} {response.request.url.path}"
    if code in (401, 403):
        return AuthError(
            f"the API refused the token ({code}: {detail}); check the token, and that it may run this model",
            status=code,
            detail=detail,
        )
    if code == 402:
        return BillingError(
            f"the API needs billing set up (402: {detail}); add credit at"
            " https://replicate.com/account/billing",
            status=code,
            detail=detail,
        )
    if code == 404:
        return NotFoundError(f"{what}: not found ({detail})", status=code, detail=detail)
    if code == 422:
        return InvalidInputError(f"the API rejected the input: {detail}", status=code, detail=detail)
    if code == 429:
        wait = retry_after_seconds(response, body, now=now)
        return RateLimitedError(
            f"{what}: throttled ({detail})",
            retry_after=wait,
            detail=detail,
            limit_rpm=stated_limit_rpm(detail),
        )
    if code >= 500:
        return ServerError(f"{what}: server error {code}: {detail}", status=code, detail=detail)
    return ProtocolError(f"{what}: unexpected HTTP {code}: {detail}", status=code, detail=detail)


class ApiClient:
    """The endpoints flux-batch calls; ``calls`` counts requests by kind (create, get, list, ...)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        token: str | None,
        *,
        wall_clock: Callable[[], float] = time.time,
        connect_timeout: float = 15.0,
        read_timeout: float = 30.0,
        deadline_s: float | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.api_host = urlsplit(self.base_url).netloc
        self._token = token
        self._wall_clock = wall_clock
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._deadline_s = CALL_DEADLINE_S if deadline_s is None else deadline_s
        self._max_answer = max_answer_bytes
        self.calls: Counter[str] = Counter()
        # A model's create URL, parsed once: httpx parses a URL given as text at every request (18 us).
        self._create_urls: dict[str, httpx.URL] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    def auth_headers(self, url: str) -> dict[str, str]:
        """The Authorization header, only for URLs on the API's own host (never for file hosts)."""
        if self._token and urlsplit(url).netloc == self.api_host:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _timeout(self, read: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(
            self._read_timeout, connect=self._connect_timeout, read=read or self._read_timeout
        )

    async def _exchange(
        self,
        kind: str,
        method: str,
        path_or_url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        files: Any = None,
        read_timeout: float | None = None,
        holds_s: float = 0.0,
    ) -> tuple[int, Any]:
        """Send one request; return the answer's HTTP status and its decoded JSON body. ``holds_s`` is how
        long the server may rightly hold the answer (``Prefer: wait``), added to the overall deadline."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        all_headers = {"User-Agent": f"flux-batch/{__version__}", **self.auth_headers(url), **(headers or {})}
        self.calls[kind] += 1
        deadline = self._deadline_s + holds_s
        try:
            # Per-read timeouts restart with every byte: only an overall deadline bounds a trickling answer.
            response, content = await within(
                deadline,
                self._send(
                    method, self._target(kind, url), json_body, params, files, all_headers, read_timeout
                ),
            )
        except asyncio.TimeoutError as exc:
            raise TransportError(
                f"{method} {url}: no complete answer within {deadline:.0f} s", sent=True
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransportError(
                f"{method} {url}: could not connect ({exc or type(exc).__name__})", sent=False
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransportError(f"{method} {url}: timed out waiting for the response", sent=True) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"{method} {url}: connection lost ({exc or type(exc).__name__})", sent=True
            ) from exc
        if response.status_code >= 400:
            raise error_for(response, now=self._wall_clock())
        try:
            return response.status_code, json.loads(content)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(
                f"{method} {url}: HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from exc

    def _target(self, kind: str, url: str) -> httpx.URL | str:
        """``url`` as given to httpx: a create's parsed once (the same few URLs), any other as text."""
        if kind != "create":
            return url
        parsed = self._create_urls.get(url)
        if parsed is None:
            parsed = self._create_urls[url] = httpx.URL(url)
        return parsed

    async def _send(
        self,
        method: str,
        url: httpx.URL | str,
        json_body: Any,
        params: Mapping[str, str] | None,
        files: Any,
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> tuple[httpx.Response, bytes]:
        """The request, and its answer read as a stream up to the size cap (an error's as a buffered copy,
        for the error translation; a success's as received, closed), and the body."""
        async with self._http.stream(
            method,
            url,
            json=json_body,
            params=params,
            files=files,
            headers=dict(headers),
            timeout=self._timeout(read_timeout),
        ) as response:
            # An error answer is read up to the cap and described from that; a success must be whole.
            is_error = response.status_code >= 400
            too_big = ProtocolError(
                f"{method} {url}: the answer (HTTP {response.status_code}) is larger than "
                f"{self._max_answer // (1024 * 1024)} MiB; refusing to read it",
                status=response.status_code,
            )
            length = response.headers.get("content-length", "")
            if not is_error and length.isdigit() and int(length) > self._max_answer:
                raise too_big
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_answer:
                    if is_error:
                        break
                    raise too_big
                chunks.append(chunk)
        content = b"".join(chunks)
        if not is_error:  # only its status is read: no copy
            return response, content
        plain = [(k, v) for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS]
        copy = httpx.Response(response.status_code, headers=plain, content=content, request=response.request)
        return copy, content

    async def _request(self, kind: str, method: str, path_or_url: str, **kw: Any) -> Any:
        return (await self._exchange(kind, method, path_or_url, **kw))[1]

    async def create(
        self,
        model: str,
        version: str | None,
        input: Mapping[str, Any],
        *,
        wait: int = defaults.WAIT_S,
        cancel_after_s: float | None = None,
    ) -> Prediction:
        """Create a prediction, holding the connection up to ``wait`` seconds (``Prefer: wait=N``; with 0,
        no header: the API answers at once and the caller polls) for it to finish. A TransportError with
        ``sent`` or a ServerError leaves it unknown whether one was created.

        An answer is never ambiguous: one with a usable id is the prediction, whatever else it says (an
        undocumented or null status reads as ``starting``); one without (not JSON, empty, not an object,
        no id or an unusable one) is a ProtocolError carrying the answer's HTTP status."""
        wait = max(0, min(defaults.MAX_WAIT_S, int(wait)))
        headers = {"Prefer": f"wait={wait}"} if wait > 0 else {}
        if cancel_after_s:
            headers["Cancel-After"] = f"{max(5, int(cancel_after_s))}s"
        if version:
            # owner/name:<id>, one of the forms the API documents for ``version``: it names the model too,
            # so the simulator (which cannot know every real version id) runs a pinned real version.
            ref = version if ":" in version or "/" not in model else f"{model}:{version}"
            path, body = "/predictions", {"version": ref, "input": dict(input)}
        else:
            path, body = f"/models/{model}/predictions", {"input": dict(input)}
        status = 0
        try:
            status, data = await self._exchange(
                "create",
                "POST",
                path,
                json_body=body,
                headers=headers,
                read_timeout=wait + self._read_timeout,
                holds_s=wait,
            )
            return parse_prediction(data, strict=False)
        except ProtocolError as err:
            status = status or err.status
            if not 200 <= status < 400:
                raise  # an error status flux-batch does not know (409, ...): not an answered create
            raise ProtocolError(
                f"the API answered a create (HTTP {status}) without a usable prediction id: {err}",
                status=status,
            ) from err

    async def get(self, prediction_id: str) -> Prediction:
        pid = quote(checked_id(prediction_id), safe="")
        return parse_prediction(await self._request("get", "GET", f"/predictions/{pid}"))

    async def cancel(self, prediction_id: str) -> Prediction:
        pid = quote(checked_id(prediction_id), safe="")
        return parse_prediction(await self._request("cancel", "POST", f"/predictions/{pid}/cancel"))

    async def list_created_after(
        self,
        created_after: str,
        created_before: str | None = None,
        *,
        before_page: Callable[[], Awaitable[object]] | None = None,
        max_pages: int = MAX_LIST_PAGES,
    ) -> AsyncIterator[Prediction]:
        """Predictions created at or after ``created_after`` (and before ``created_before``, ISO 8601),
        newest first, across pages; each page first awaits ``before_page`` (the caller's limiter).

        The ``next`` link's query (the cursor) is reapplied to the configured base URL: a proxy's ``next``
        may name another host. ListingError if the chain has not ended after ``max_pages`` pages or names a
        page already read.
        """
        params: dict[str, str] = {"created_after": created_after}
        if created_before is not None:
            params["created_before"] = created_before
        seen: set[str] = set()
        for _ in range(max_pages):
            if before_page is not None:
                await before_page()
            page = await self._request("list", "GET", "/predictions", params=params)
            if not isinstance(page, Mapping) or not isinstance(page.get("results"), list):
                raise ProtocolError(f"GET /predictions: expected a page of results, got {str(page)[:120]}")
            for item in page["results"]:
                yield parse_prediction(item, strict=False)
            nxt = page.get("next")
            if not nxt:
                return
            query = urlsplit(str(nxt)).query
            if query in seen:
                raise ListingError(f"GET /predictions: the next page ({str(nxt)[:120]}) was already read")
            seen.add(query)
            params = dict(parse_qsl(query))
        raise ListingError(
            f"GET /predictions: the list had not ended after {max_pages} pages; searching no further"
        )

    async def model(self, name: str) -> Mapping[str, Any]:
        """``GET /models/{owner}/{name}``: the model, with ``latest_version.openapi_schema``."""
        data = await self._request("model", "GET", f"/models/{name}")
        if not isinstance(data, Mapping):
            raise ProtocolError(f"GET /models/{name}: the answer is not a JSON object")
        return data

    async def upload(self, content: bytes, filename: str, content_type: str) -> str:
        """Upload a file (``POST /files``); return the URL to pass as a model input."""
        files = {"content": (filename, content, content_type)}
        data = await self._request("upload", "POST", "/files", files=files)
        url = (data.get("urls") or {}).get("get") if isinstance(data, Mapping) else None
        if not isinstance(url, str):
            raise ProtocolError(f"POST /files: no urls.get in the answer: {json.dumps(data)[:160]}")
        return url
