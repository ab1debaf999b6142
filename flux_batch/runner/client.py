"""The Replicate predictions API client: one injected ``httpx.AsyncClient``, errors translated at the edge.

Every URL is built from the configured base URL (``https://api.replicate.com/v1``, a proxy's
``https://proxy.example/replicate/v1``, or the simulator's) and a prediction id, never from the ``urls``
of a response: proxies point those at api.replicate.com. httpx exceptions and HTTP error statuses leave
this module as :mod:`flux_batch.errors` classes; a timeout or a dropped connection says whether the
request may have reached the server (``TransportError.sent``), which is what makes a create ambiguous.
The client counts its calls by kind for the run summary.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from flux_batch import __version__
from flux_batch.errors import (
    ApiError,
    AuthError,
    BillingError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnknownStatusError,
)

RUNNING = frozenset({"starting", "processing"})
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_RESETS_IN = re.compile(r"~\s*(\d+(?:\.\d+)?)\s*s")
#: "Your rate limit for creating predictions is reduced to 6 requests per minute with a burst of 1 ..."
_REDUCED_TO = re.compile(r"reduced to (\d+(?:\.\d+)?) requests per minute")


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

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def output_urls(self) -> tuple[str, ...]:
        """The output as a tuple of URLs (one string, or a list of them); ProtocolError for anything else."""
        out = self.output
        if out is None:
            return ()
        if isinstance(out, str):
            return (out,)
        if isinstance(out, list) and all(isinstance(u, str) for u in out):
            return tuple(out)
        raise ProtocolError(f"prediction {self.id}: output is not a URL or a list of URLs: {str(out)[:120]}")


def parse_prediction(body: Any) -> Prediction:
    """A :class:`Prediction` from a decoded response body; ProtocolError if it is not one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
        raise ProtocolError(f"expected a prediction object, got: {str(body)[:160]}")
    status = body.get("status")
    if status not in RUNNING and status not in TERMINAL:
        raise UnknownStatusError(
            f"prediction {body['id']} has an unknown status {status!r}, which flux-batch does not know"
        )
    metrics = body.get("metrics") or {}
    predict_time = metrics.get("predict_time") if isinstance(metrics, Mapping) else None
    return Prediction(
        id=body["id"],
        status=status,
        model=body.get("model"),
        version=body.get("version"),
        input=body.get("input") or {},
        output=body.get("output"),
        error=None if body.get("error") is None else str(body.get("error")),
        data_removed=bool(body.get("data_removed")),
        created_at=body.get("created_at"),
        completed_at=body.get("completed_at"),
        predict_time=float(predict_time) if isinstance(predict_time, (int, float)) else None,
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
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.api_host = urlsplit(self.base_url).netloc
        self._token = token
        self._wall_clock = wall_clock
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.calls: Counter[str] = Counter()

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

    async def _request(
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
    ) -> Any:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        all_headers = {"User-Agent": f"flux-batch/{__version__}", **self.auth_headers(url), **(headers or {})}
        self.calls[kind] += 1
        try:
            response = await self._http.request(
                method,
                url,
                json=json_body,
                params=params,
                files=files,
                headers=all_headers,
                timeout=self._timeout(read_timeout),
            )
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
            return response.json()
        except ValueError as exc:
            raise ProtocolError(
                f"{method} {url}: HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from exc

    async def create(
        self,
        model: str,
        version: str | None,
        input: Mapping[str, Any],
        *,
        wait: int = 60,
        cancel_after_s: float | None = None,
    ) -> Prediction:
        """Create a prediction, holding the connection up to ``wait`` seconds (``Prefer: wait=N``; with 0,
        no header: the API answers at once and the caller polls) for it to finish. A TransportError with
        ``sent`` or a ServerError leaves it unknown whether one was created."""
        headers = {"Prefer": f"wait={min(60, int(wait))}"} if wait > 0 else {}
        if cancel_after_s:
            headers["Cancel-After"] = f"{max(5, int(cancel_after_s))}s"
        if version:
            path, body = "/predictions", {"version": version, "input": dict(input)}
        else:
            path, body = f"/models/{model}/predictions", {"input": dict(input)}
        data = await self._request(
            "create", "POST", path, json_body=body, headers=headers, read_timeout=wait + self._read_timeout
        )
        return parse_prediction(data)

    async def get(self, prediction_id: str) -> Prediction:
        return parse_prediction(await self._request("get", "GET", f"/predictions/{prediction_id}"))

    async def cancel(self, prediction_id: str) -> Prediction:
        return parse_prediction(await self._request("cancel", "POST", f"/predictions/{prediction_id}/cancel"))

    async def list_created_after(
        self, created_after: str, created_before: str | None = None
    ) -> AsyncIterator[Prediction]:
        """Predictions created at or after ``created_after`` (and before ``created_before``, ISO 8601),
        newest first, across pages.

        The ``next`` link's query (the cursor) is reapplied to the configured base URL: a proxy's ``next``
        may name another host.
        """
        params: dict[str, str] = {"created_after": created_after}
        if created_before is not None:
            params["created_before"] = created_before
        while True:
            page = await self._request("list", "GET", "/predictions", params=params)
            if not isinstance(page, Mapping) or not isinstance(page.get("results"), list):
                raise ProtocolError(f"GET /predictions: expected a page of results, got {str(page)[:120]}")
            for item in page["results"]:
                yield parse_prediction(item)
            nxt = page.get("next")
            if not nxt:
                return
            params = dict(parse_qsl(urlsplit(str(nxt)).query))

    async def upload(self, content: bytes, filename: str, content_type: str) -> str:
        """Upload a file (``POST /files``); return the URL to pass as a model input."""
        files = {"content": (filename, content, content_type)}
        data = await self._request("upload", "POST", "/files", files=files)
        url = (data.get("urls") or {}).get("get") if isinstance(data, Mapping) else None
        if not isinstance(url, str):
            raise ProtocolError(f"POST /files: no urls.get in the answer: {json.dumps(data)[:160]}")
        return url
