"""The JSON the simulator answers with: prediction and file objects, list pages and problem+json errors.

Two styles: Replicate's own (``urls`` point back at the simulator) and a proxy's (as the seed pages show:
an extra ``message`` field and ``urls.get``/``urls.cancel`` pointing at ``https://api.replicate.com/v1``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flux_batch.simulator.store import FILE_LIFETIME, TERMINAL, Prediction, UploadedFile

REPLICATE_API = "https://api.replicate.com/v1"
REPLICATE_STREAM = "https://stream.replicate.com/v1/files"


@dataclass(frozen=True)
class Style:
    """How to spell a response: ``api_base`` for ``urls``, ``files_base`` for output files, ``stream_base``
    for ``urls.stream``; proxy style (``message`` set) mirrors the seed pages' pass-through proxy."""

    api_base: str
    files_base: str
    message: str | None = None  # set in proxy style
    stream_base: str = REPLICATE_STREAM
    list_base: str | None = None  # where a list page's ``next`` points (default ``api_base``)

    @property
    def proxy(self) -> bool:
        return self.message is not None


def iso(t: float, digits: int = 3) -> str:
    """Clock seconds as ISO 8601 UTC with ``Z``: ``2025-05-31T00:49:47.512Z``; Replicate writes
    ``created_at`` with 3 fraction digits and ``started_at``/``completed_at`` with 9."""
    whole = int(t // 1)
    frac = f"{t - whole:.{digits}f}"[1:] if digits else ""
    if frac.startswith(".") and frac[1:] and int(frac[1:]) == 10**digits:  # rounding reached a whole second
        whole, frac = whole + 1, "." + "0" * digits
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + frac + "Z"


def output_url(style: Style, prediction: Prediction, index: int) -> str:
    return f"{style.files_base}/delivery/{prediction.id}/output_{index}.{prediction.images[index].fmt}"


def prediction_json(p: Prediction, now: float, style: Style, retention: float) -> dict[str, Any]:
    """The prediction object as ``GET /predictions/{id}`` returns it at ``now``.

    Replicate style adds what the current API sends beyond the seed pages' proxy: ``source`` and
    ``metrics.total_time``. After ``retention`` the input, output and logs are removed, as the API does.
    """
    status, started, completed = p.state(now)
    removed = completed is not None and now >= completed + retention
    output: Any = None
    if status == "succeeded" and not removed:
        links = [output_url(style, p, i) for i in range(len(p.images))]
        output = links if p.output_list else links[0]
    body: dict[str, Any] = {
        "id": p.id,
        "model": p.model,
        "version": p.version,
        "input": {} if removed else p.input,
        "logs": "" if removed else p.logs(status, now),
        "output": output,
        "data_removed": removed,
        "error": p.error if status == "failed" else None,
        "status": status,
        "created_at": iso(p.created),
    }
    if not style.proxy:
        body["source"] = "api"
    if started is not None:
        body["started_at"] = iso(started, 9)
    if completed is not None:
        body["completed_at"] = iso(completed, 9)
    if p.deadline is not None:
        body["deadline"] = iso(p.deadline)
    body["urls"] = {
        "cancel": f"{style.api_base}/predictions/{p.id}/cancel",
        "get": f"{style.api_base}/predictions/{p.id}",
        "stream": f"{style.stream_base}/{p.id}",
        "web": f"https://replicate.com/p/{p.id}",
    }
    if status in TERMINAL:
        ran = (completed - started) if (started is not None and completed is not None) else 0.0
        images = len(p.images) if status == "succeeded" else 0
        metrics: dict[str, Any] = {"image_count": images, "predict_time": round(ran, 6)}
        if p.billed_mp is not None and status == "succeeded":  # FLUX.2: billed by megapixel
            metrics["image_input_megapixel_count"], metrics["image_output_megapixel_count"] = p.billed_mp
        if not style.proxy and completed is not None:
            metrics["total_time"] = round(completed - p.created, 6)
        body["metrics"] = metrics
    if style.message is not None:
        body["message"] = style.message
    return body


def file_json(f: UploadedFile, style: Style) -> dict[str, Any]:
    """The file object of ``POST /files`` and ``GET /files/{id}`` (``/files/{id}/download`` has the bytes)."""
    return {
        "id": f.id,
        "name": f.name,
        "content_type": f.content_type,
        "size": len(f.data),
        "etag": f.sha256[:32],
        "checksums": {"sha256": f.sha256},
        "metadata": f.metadata,
        "created_at": iso(f.created),
        "expires_at": iso(f.created + FILE_LIFETIME),
        "urls": {"get": f"{style.api_base}/files/{f.id}"},
    }


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem+json body as Replicate sends them."""
    return {"title": title, "detail": detail, "status": status, **extra}


def invalid_input(problems: list[tuple[str, str]]) -> dict[str, Any]:
    """422 for invalid input: ``problems`` are ``(field path below input, message)``."""
    detail = "".join(f"- input.{path}: {message}\n" for path, message in problems)
    fields = [
        {"type": "invalid", "field": f"input.{path}", "description": message} for path, message in problems
    ]
    return problem(422, "Input validation failed", detail, invalid_fields=fields)


HTML_ERROR = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


def html_error(status: int) -> bytes:
    """The kind of page a load balancer or proxy sends instead of JSON."""
    reason = HTML_ERROR.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def page_json(
    results: Sequence[Mapping[str, Any]], next_url: str | None, previous_url: str | None
) -> dict[str, Any]:
    return {"next": next_url, "previous": previous_url, "results": list(results)}
