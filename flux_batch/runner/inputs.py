"""Turning a job's run-time image references into something the API can fetch.

``{"$upstream": job, "output": i}`` becomes the upstream output's URL while it is fresh (the API deletes
outputs an hour after completion; we stop trusting a URL a safety margin before that), otherwise the
downloaded file is uploaded (``POST /files``); ``{"$file": path, "sha256": h}`` (a local image named in the
manifest) is uploaded too. Uploads are remembered by content hash, so a photo used by many jobs is sent
once. Where uploads are not supported and the file is small, it goes inline as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from flux_batch.errors import InvalidInputError, NotFoundError, ProtocolError, StateError
from flux_batch.jobs import FILE_KEY, UPSTREAM_KEY
from flux_batch.outputs.safepath import inside
from flux_batch.runner.client import ApiClient
from flux_batch.runner.state.store import Store

#: The API's advice: data URLs for files up to 256 kB.
DATA_URI_MAX_BYTES = 256 * 1024
#: How long an uploaded file's URL is reused (Replicate keeps uploads for a day).
UPLOAD_REUSE_S = 12 * 3600.0


def data_uri(content: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(content).decode('ascii')}"


class InputResolver:
    """Resolves references for one run. ``call`` wraps each upload in the run's limiter and retries."""

    def __init__(
        self,
        store: Store,
        client: ApiClient,
        out_dir: Path,
        base_dir: Path,
        *,
        call: Callable[[Callable[[], Awaitable[str]]], Awaitable[str]],
        wall_clock: Callable[[], float] = time.time,
        data_uri_max_bytes: int = DATA_URI_MAX_BYTES,
    ) -> None:
        self._store = store
        self._client = client
        self._out_dir = out_dir
        self._base_dir = base_dir
        self._call = call
        self._wall = wall_clock
        self._data_max = data_uri_max_bytes
        self.uploads_supported = True

    async def resolve(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """``input`` with every reference replaced by a URL, also in lists (``input_images``);
        InvalidInputError if one cannot be."""
        out = dict(input)
        for key, value in input.items():
            if isinstance(value, list):
                out[key] = [await self._one(v) for v in value]
            else:
                out[key] = await self._one(value)
        return out

    async def _one(self, value: Any) -> Any:
        if isinstance(value, Mapping) and UPSTREAM_KEY in value:
            return await self._upstream(str(value[UPSTREAM_KEY]), int(value.get("output", 0)))
        if isinstance(value, Mapping) and FILE_KEY in value:
            return await self._local(str(value[FILE_KEY]), value.get("sha256"))
        return value

    async def _upstream(self, job_id: str, index: int) -> str:
        outputs = {o.idx: o for o in self._store.outputs(job_id)}
        output = outputs.get(index)
        if output is None:
            raise InvalidInputError(f"upstream job {job_id} has no output {index}")
        if output.url and output.url_until is not None and output.url_until > self._wall():
            return output.url
        if not output.file_name:
            raise InvalidInputError(
                f"upstream job {job_id}'s output {index} has expired and was never downloaded"
            )
        path = inside(self._out_dir, output.file_name)
        if path is None:  # a tampered state: never send a file from elsewhere
            raise StateError(
                f"upstream job {job_id}'s file {output.file_name[:120]!r} in the state is not inside "
                f"{self._out_dir}; the state is damaged"
            )
        return await self._send_file(path, None)

    async def _local(self, path: str, sha256: Any) -> str:
        full = (self._base_dir / path).resolve()
        if not full.is_file():
            raise InvalidInputError(f"the input image {path} does not exist (looked in {full})")
        return await self._send_file(full, str(sha256) if sha256 else None)

    async def _send_file(self, path: Path, expected_sha: str | None) -> str:
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if expected_sha and digest != expected_sha:
            raise InvalidInputError(
                f"{path} changed since the manifest was expanded; run again to pick it up"
            )
        cached = self._store.upload_for(digest, newer_than=self._wall() - UPLOAD_REUSE_S)
        if cached:
            return cached
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if self.uploads_supported:
            try:
                url = await self._call(lambda: self._client.upload(content, path.name, content_type))
            except (NotFoundError, ProtocolError) as err:
                if isinstance(err, ProtocolError) and err.status not in (400, 405, 501):
                    raise
                self.uploads_supported = False
            else:
                self._store.remember_upload(digest, url)
                return url
        if len(content) <= self._data_max:
            return data_uri(content, content_type)
        raise InvalidInputError(
            f"{path.name} ({len(content)} bytes) must be uploaded, but this API does not accept uploads "
            f"(POST /files) and it is over the {self._data_max}-byte limit for a data: URI"
        )
