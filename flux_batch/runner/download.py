"""Safe downloads of output files: streamed, size-capped, checked, and atomically put in place.

A file is written under a temporary name in its final folder, hashed as it streams, checked (the byte
count against ``Content-Length``, the format identified by Pillow from the bytes, its size in pixels so a
decompression bomb never reaches a decoder, the format's own end marker so a truncated body never passes),
fsynced, renamed to ``<stem>.<ext>`` (the extension of what the bytes really are, not of what was
requested) and the folder fsynced. Only ``http(s)`` and ``data:`` URLs are fetched; the caller passes the
headers, so the API token goes only to the API's own host. A whole download has a deadline, not only
each read: a host trickling a byte at a time cannot hold a job.

A file host's 404 is a :class:`DownloadError` like any other (CDNs and proxies answer 404 for a moment):
only the API can say that an output is gone. The folder's own failures (a full disk, a read-only folder)
leave as :class:`~flux_batch.errors.StorageError`, which stops the run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from flux_batch.errors import BadOutputError, DownloadError, storage_error
from flux_batch.outputs.layout import IMAGES_DIR
from flux_batch.outputs.safepath import stays_inside
from flux_batch.runner.deadline import within
from flux_batch.runner.state.store import FileInfo, Store

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: The most pixels an output image may have. FLUX makes at most about 4 megapixels; more than this is a
#: decompression bomb (a few kB of PNG that would decode into gigabytes).
MAX_OUTPUT_PIXELS = 64_000_000
#: How long a whole download may take.
DEFAULT_DEADLINE_S = 300.0
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


def decode_data_url(url: str) -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URL."""
    head, sep, data = url[5:].partition(",")
    if not sep:
        raise DownloadError("a data: URL without a comma")
    try:
        if head.endswith(";base64"):
            return base64.b64decode(data, validate=False)
        return unquote_to_bytes(data)
    except (binascii.Error, ValueError) as exc:
        raise DownloadError(f"a malformed data: URL ({exc})") from exc


def complete(fmt: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether a file of format ``fmt`` ends where its own structure says it should."""
    if fmt == "PNG":
        return tail.endswith(b"IEND\xaeB`\x82")
    if fmt == "JPEG":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "WEBP":
        return len(head) >= 8 and int.from_bytes(head[4:8], "little") + 8 in (size, size - 1)
    if fmt == "GIF":
        return tail.endswith(b";")
    return True


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish_file(tmp: Path, dest_dir: Path, stem: str, out_dir: Path, digest: str, size: int) -> FileInfo:
    """Check the bytes at ``tmp`` are a whole image, then move them to ``dest_dir/stem.<ext>``."""
    try:
        with Image.open(tmp) as image:
            fmt = image.format or ""
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise BadOutputError(f"the file for {stem} is a decompression bomb ({exc}); not kept") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DownloadError(f"the file for {stem} is not an image Pillow can read ({exc})") from exc
    if width * height > MAX_OUTPUT_PIXELS:
        raise BadOutputError(
            f"the {fmt} file for {stem} claims {width} x {height} pixels, over the "
            f"{MAX_OUTPUT_PIXELS:,}-pixel limit: a decompression bomb, not kept"
        )
    with tmp.open("rb") as fh:
        head = fh.read(16)
        fh.seek(max(0, size - 16))
        tail = fh.read(16)
    if not complete(fmt, head, tail, size):
        raise DownloadError(f"the {fmt} file for {stem} is truncated ({size} bytes)")
    ext = _EXTENSIONS.get(fmt, fmt.lower() or "bin")
    final = dest_dir / f"{stem}.{ext}"
    os.replace(tmp, final)
    fsync_dir(dest_dir)
    mtime_ns = final.stat().st_mtime_ns
    rel = final.relative_to(out_dir).as_posix()
    return FileInfo(rel, digest, size, width, height, mtime_ns)  # its quality: runner/image_work.py


async def download(
    http: httpx.AsyncClient,
    url: str,
    out_dir: Path,
    rel_dir: str,
    stem: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 120.0,
    deadline_s: float | None = None,
) -> FileInfo:
    """Fetch ``url`` into ``out_dir/rel_dir/stem.<ext>``. DownloadError for anything that went wrong with
    the file (worth retrying; BadOutputError when it is not), StorageError when it cannot be written."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "data"):
        raise DownloadError(f"refusing to fetch {url[:80]!r}: only http(s) and data: URLs are downloaded")
    dest_dir = out_dir / rel_dir
    tmp = dest_dir / f".{stem}.{secrets.token_hex(4)}.part"
    sha = hashlib.sha256()
    size = 0
    try:
        try:
            fh = tmp.open("wb")
        except FileNotFoundError:  # the stage's first image: its folder is made once, not per download
            dest_dir.mkdir(parents=True, exist_ok=True)
            fh = tmp.open("wb")
        with fh:
            if scheme == "data":
                data = decode_data_url(url)
                if len(data) > max_bytes:
                    raise DownloadError(f"the output for {stem} is larger than the {max_bytes}-byte cap")
                sha.update(data)
                fh.write(data)
                size = len(data)
            else:
                fetch = _stream(http, url, fh, sha, stem, headers or {}, max_bytes, timeout)
                deadline = DEFAULT_DEADLINE_S if deadline_s is None else deadline_s
                try:
                    size = await within(deadline, fetch)
                except asyncio.TimeoutError as exc:
                    raise DownloadError(
                        f"downloading the output for {stem} took longer than {deadline:.0f} s"
                    ) from exc
            # Two fsyncs per image (the file, then its folder) wait milliseconds each for the disk: in a
            # worker thread, or the event loop would hold every request in flight meanwhile.
            return await asyncio.to_thread(_seal, fh, tmp, dest_dir, stem, out_dir, sha.hexdigest(), size)
    except OSError as exc:
        raise storage_error(exc, f"writing the output for {stem} in {dest_dir}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _seal(
    fh: BinaryIO, tmp: Path, dest_dir: Path, stem: str, out_dir: Path, digest: str, size: int
) -> FileInfo:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    return finish_file(tmp, dest_dir, stem, out_dir, digest, size)


async def _stream(
    http: httpx.AsyncClient,
    url: str,
    fh: BinaryIO,
    sha: Any,
    stem: str,
    headers: Mapping[str, str],
    max_bytes: int,
    timeout: float,
) -> int:
    size = 0
    write = fh.write
    try:
        async with http.stream("GET", url, headers=dict(headers), timeout=timeout) as response:
            if response.status_code >= 400:
                raise DownloadError(
                    f"downloading the output for {stem} failed with HTTP {response.status_code}"
                )
            expected = response.headers.get("content-length")
            if expected is not None and expected.isdigit() and int(expected) > max_bytes:
                raise DownloadError(
                    f"the output for {stem} is {expected} bytes, over the {max_bytes}-byte cap"
                )
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadError(f"the output for {stem} is over the {max_bytes}-byte cap")
                sha.update(chunk)
                write(chunk)
            encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            if expected is not None and expected.isdigit() and int(expected) != size and not encoded:
                raise DownloadError(f"the download for {stem} was cut short: {size} of {expected} bytes")
    except httpx.HTTPError as exc:
        raise DownloadError(f"downloading the output for {stem} failed: {exc or type(exc).__name__}") from exc
    return size


def remove_partials(out_dir: Path) -> int:
    """Delete temporary files left by a download that a killed run never finished; return how many."""
    removed = 0
    images = out_dir / IMAGES_DIR
    if images.is_dir():
        for part in images.rglob(".*.part"):
            part.unlink(missing_ok=True)
            removed += 1
    return removed


def reopen_missing_files(store: Store, out_dir: Path) -> int:
    """Succeeded jobs whose files are gone or changed go back to ``downloading`` (fetched again, or
    created again if the API no longer has the output). Returns how many jobs were reopened.

    Cheap: a file whose size and modification time are as recorded is trusted; only one that differs
    (or was recorded before times were) is hashed, and then its time is recorded if the hash matches.
    The sizes and times come from one walk of the images folder (at 100,000 images a path object and a
    stat by name per file were a noticeable part of a resume's start-up). A recorded name that does not
    resolve inside the folder (a tampered state) counts as missing.
    """
    reopen: set[str] = set()
    confirmed: list[tuple[int, str, int]] = []
    on_disk = _regular_files(out_dir, IMAGES_DIR)
    for job_id, idx, file_name, sha256, size, mtime_ns in store.downloaded_files():
        if not stays_inside(file_name):
            reopen.add(job_id)
            continue
        found = on_disk.get(file_name)
        if found is None:  # not under images/ (as an older layout had it), or gone
            st = _regular_file(out_dir / file_name)
            found = None if st is None else (st.st_size, st.st_mtime_ns)
        if found is None or found[0] != size:
            reopen.add(job_id)
        elif found[1] != mtime_ns:
            if _sha256_of(out_dir / file_name) == sha256:
                confirmed.append((found[1], job_id, idx))
            else:
                reopen.add(job_id)
    if confirmed or reopen:
        store.reopen_files(reopen, confirmed)
    return len(reopen)


def _regular_files(out_dir: Path, folder: str) -> dict[str, tuple[int, int]]:
    """Every regular file under ``out_dir/folder`` (links followed, as a stat by name would), by its
    path relative to ``out_dir`` -> (size, modification time in ns). Unreadable folders are left out."""
    found: dict[str, tuple[int, int]] = {}
    root = str(out_dir)
    todo = [folder]
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(os.path.join(root, rel)) as entries:
                for entry in entries:
                    name = f"{rel}/{entry.name}"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(name)
                            continue
                        st = entry.stat()
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found[name] = (st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return found


def _regular_file(path: Path) -> os.stat_result | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
