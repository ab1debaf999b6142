"""The files API as Replicate documents it: create (multipart), list, get (the file object), delete and
download (the bytes).

Uploads are parsed with Starlette's multipart parser; anything it cannot parse, and any field that is not
what the API takes (a ``type`` that is not a MIME type, a ``filename`` over 255 bytes, ``metadata`` that
is not a JSON object), is a 4xx problem, never a server error. ``metadata`` may come as a plain field
(``curl -F``, the Python client) or as a file part (the JavaScript client sends a Blob).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from flux_batch.simulator import views
from flux_batch.simulator.asgi import Request, Response, loads_strict
from flux_batch.simulator.config import FaultSpec
from flux_batch.simulator.handlers import PAGE_SIZE, decode_cursor, encode_cursor, not_found, problem
from flux_batch.simulator.store import Store, UploadedFile

MAX_FILENAME_BYTES = 255
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # "Files must be less than 100MB in size" (413)
DEFAULT_TYPE = "application/octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
#: ``type/subtype`` and optional ``; name=value`` parameters (RFC 6838 / RFC 9110), ASCII only.
_MIME = re.compile(rf'^{_TOKEN}/{_TOKEN}(?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|"[^"\\\x00-\x1f\x7f-\uffff]*"))*$')


class FileHandlers:
    """``/files`` endpoints over one :class:`Store` and clock."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        from starlette.requests import Request as StarletteRequest  # only uploads need multipart parsing

        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
            return _too_large()
        try:
            form = await StarletteRequest(request.scope, request.receive).form()
        except Exception as exc:  # whatever the parser trips on is the client's malformed body
            return problem(400, "Invalid multipart body", f"The request body is not valid multipart: {exc}")
        try:
            return await self._create(form, style)
        finally:
            await form.close()

    async def _create(self, form: Any, style: views.Style) -> Response:
        try:
            content = form.get("content")
            if content is None:
                return problem(422, "Invalid request", "- content: a file is required\n")
            data = content.encode() if isinstance(content, str) else await content.read()
            metadata_field = form.get("metadata")
            if metadata_field is not None and not isinstance(metadata_field, str):
                metadata_field = (await metadata_field.read()).decode("utf-8")
        except UnicodeDecodeError:
            return problem(422, "Invalid request", "- metadata: must be UTF-8 JSON\n")
        if len(data) > MAX_UPLOAD_BYTES:
            return _too_large()
        name = _text(form.get("filename")) or getattr(content, "filename", None) or "file"
        if len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
            return problem(422, "Invalid request", "- filename: must be at most 255 bytes\n")
        content_type = (
            _text(form.get("type")) or getattr(content, "content_type", None) or DEFAULT_TYPE
        ).strip()
        if not _MIME.match(content_type):
            return problem(422, "Invalid request", f"- type: {content_type!r} is not a MIME type\n")
        try:
            metadata = loads_strict(metadata_field or "{}")
        except ValueError:
            return problem(422, "Invalid request", "- metadata: must be a JSON object\n")
        if not isinstance(metadata, dict):
            return problem(422, "Invalid request", "- metadata: must be a JSON object\n")
        file = self.store.upload(name, content_type, data, self.clock(), metadata)
        return Response.json(201, views.file_json(file, style))

    async def list_files(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        try:
            cursor = decode_cursor(request.query.get("cursor"))
        except ValueError as exc:
            return problem(400, "Invalid query", str(exc))
        page, next_seq = self.store.file_page(before_seq=cursor, limit=PAGE_SIZE)
        next_url = None
        if next_seq is not None:
            query = urlencode({"cursor": encode_cursor(next_seq)})
            next_url = f"{style.list_base or style.api_base}/files?{query}"
        return Response.json(200, views.page_json([views.file_json(f, style) for f in page], next_url, None))

    def _file(self, params: Mapping[str, str]) -> UploadedFile | Response:
        """The upload the path names, or the 404 to answer."""
        return self.store.files.get(params["id"]) or not_found("File not found")

    async def get(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        file = self._file(params)
        return file if isinstance(file, Response) else Response.json(200, views.file_json(file, style))

    async def delete(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        if not self.store.delete_file(params["id"]):
            return not_found("File not found")
        return Response(204, content_type="")

    async def download(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        """The bytes, as ``application/octet-stream`` (what the API description documents)."""
        file = self._file(params)
        return file if isinstance(file, Response) else Response(200, file.data, DEFAULT_TYPE)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _too_large() -> Response:
    return problem(413, "Content too large", "Files must be less than 100MB in size")
