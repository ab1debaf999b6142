"""Downloads: extension from the bytes, hashes and sizes, truncation, caps, schemes, gone files."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from flux_batch.errors import DownloadError, OutputGoneError
from flux_batch.runner.download import complete, decode_data_url, download
from flux_batch.runner.retry import is_transient


def image_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def http_for(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif")])
async def test_extension_comes_from_the_bytes(tmp_path: Path, fmt: str, ext: str) -> None:
    data = image_bytes(fmt)
    info = await download(http_for(data), "https://files.example/out.webp", tmp_path, "images/s", "cat-1")
    assert info.file_name == f"images/s/cat-1.{ext}"
    assert (tmp_path / info.file_name).read_bytes() == data
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert (info.bytes, info.width, info.height) == (len(data), 8, 6)
    assert [p.name for p in (tmp_path / "images/s").iterdir()] == [f"cat-1.{ext}"]  # no temp file left


async def test_the_fsyncs_happen_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    synced_on: list[threading.Thread] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_on.append(threading.current_thread())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    await download(http_for(image_bytes("PNG")), "https://files.example/a.png", tmp_path, "images", "a")
    assert len(synced_on) == 2  # the file, then its folder
    assert threading.main_thread() not in synced_on


async def test_data_url(tmp_path: Path) -> None:
    data = image_bytes("PNG")
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    info = await download(http_for(b""), url, tmp_path, "images", "x")
    assert info.file_name == "images/x.png"
    assert decode_data_url("data:,hello%20there") == b"hello there"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_truncated_bodies_are_rejected(tmp_path: Path, fmt: str) -> None:
    data = image_bytes(fmt, (64, 64))[:-20]
    with pytest.raises(DownloadError, match=r"truncated|not an image"):
        await download(http_for(data), "https://f/x", tmp_path, "images", "x")
    assert list((tmp_path / "images").iterdir()) == []


async def test_wrong_content_length_is_rejected(tmp_path: Path) -> None:
    data = image_bytes("PNG")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=data, headers={"Content-Length": str(len(data) + 100)})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with pytest.raises(DownloadError):
        await download(http, "https://f/x", tmp_path, "images", "x")


async def test_size_cap_and_schemes_and_http_errors(tmp_path: Path) -> None:
    data = image_bytes("PNG", (300, 300))
    with pytest.raises(DownloadError, match="cap"):
        await download(http_for(data), "https://f/x", tmp_path, "images", "x", max_bytes=100)
    with pytest.raises(DownloadError, match="only http"):
        await download(http_for(data), "file:///etc/passwd", tmp_path, "images", "x")
    # A file host's 404 is worth retrying: only the API says an output is gone (#9.1).
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        await download(http_for(b"", status=404), "https://f/x", tmp_path, "images", "x")
    assert is_transient(info.value) and not isinstance(info.value, OutputGoneError)
    with pytest.raises(DownloadError, match="HTTP 500"):
        await download(http_for(b"", status=500), "https://f/x", tmp_path, "images", "x")
    with pytest.raises(DownloadError, match="not an image"):
        await download(http_for(b"<html>oops</html>"), "https://f/x", tmp_path, "images", "x")


async def test_headers_are_passed_only_as_given(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=image_bytes("PNG"))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await download(http, "https://files.example/x", tmp_path, "images", "x")
    assert "authorization" not in seen[0].headers
    await download(
        http, "https://api.example/x", tmp_path, "images", "y", headers={"Authorization": "Bearer t"}
    )
    assert seen[1].headers["authorization"] == "Bearer t"


def test_complete_markers() -> None:
    assert complete("PNG", b"", b"IEND\xaeB`\x82", 10)
    assert not complete("JPEG", b"", b"\x00\x01", 10)
    assert complete("BMP", b"", b"", 10)
