"""The files API as Replicate documents it (create, list, get, delete, download), and bad uploads answered
with a 4xx problem, never a server error (#11.3, #11.4)."""

from __future__ import annotations

import json

import httpx
import pytest

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread
from flux_batch.testing import in_process

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def js_client_multipart(metadata: dict[str, object]) -> tuple[bytes, str]:
    """The body the JavaScript client's ``files.create`` sends: ``content`` as a Blob with a filename and
    ``metadata`` as a second Blob (``application/json``), which FormData names ``blob``."""
    boundary = "----formdata-undici-0123456789"
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="buffer_1"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + PNG
        + b"\r\n",
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"; filename="blob"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        + json.dumps(metadata).encode()
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def test_metadata_sent_as_a_blob_part_is_read_as_json() -> None:
    body, content_type = js_client_multipart({"customer": 7})
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        created = await client.post("/files", content=body, headers={"Content-Type": content_type})
        assert created.status_code == 201, created.text
        file = created.json()
        assert file["metadata"] == {"customer": 7} and file["size"] == len(PNG)
        assert file["name"] == "buffer_1" and file["content_type"] == "application/octet-stream"


async def test_create_list_get_download_delete() -> None:
    async with in_process(SimConfig(latency=0, other_rpm=0)) as (client, _app, clock):
        ids = []
        for i in range(103):
            files = {"content": (f"f{i}.png", PNG, "image/png")}
            created = await client.post("/files", files=files, data={"metadata": json.dumps({"i": i})})
            ids.append(created.json()["id"])
            clock.advance(1)
        got = await client.get(f"/files/{ids[0]}")
        assert got.headers["content-type"] == "application/json"
        assert got.json()["id"] == ids[0] and got.json()["metadata"] == {"i": 0}
        assert got.json()["urls"]["get"] == f"http://simulator.local/v1/files/{ids[0]}"
        download = await client.get(f"/files/{ids[0]}/download")
        assert download.content == PNG and download.headers["content-type"] == "application/octet-stream"
        first = (await client.get("/files")).json()
        assert [f["id"] for f in first["results"]] == ids[::-1][:100] and first["previous"] is None
        second = (await client.get(first["next"])).json()
        assert [f["id"] for f in second["results"]] == ids[::-1][100:] and second["next"] is None
        deleted = await client.delete(f"/files/{ids[1]}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert "content-type" not in deleted.headers
        for path in (f"/files/{ids[1]}", f"/files/{ids[1]}/download"):
            gone = await client.get(path)
            assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
        assert (await client.delete(f"/files/{ids[1]}")).status_code == 404
        after = (await client.get("/files")).json()
        rest = (await client.get(after["next"])).json()
        assert [f["id"] for f in after["results"] + rest["results"]] == [i for i in ids[::-1] if i != ids[1]]


@pytest.mark.parametrize(
    ("files", "data", "needle"),
    [
        ({"content": ("a.png", PNG, "image/png")}, {"type": "image/p\u0113ng"}, "type"),  # not latin-1
        ({"content": ("a.png", PNG, "image/png")}, {"type": "image/png\x07"}, "type"),  # control character
        ({"content": ("a.png", PNG, "image/png")}, {"type": "png"}, "type"),
        ({"content": ("a.png", PNG, "image/png")}, {"metadata": "[1, 2]"}, "metadata"),
        ({"content": ("a.png", PNG, "image/png")}, {"metadata": "{nope"}, "metadata"),
        ({"content": ("a.png", PNG, "image/png")}, {"metadata": '{"a": NaN}'}, "metadata"),
        ({"content": ("a.png", PNG, "image/png")}, {"filename": "x" * 256}, "filename"),
        ({"other": ("a.png", PNG, "image/png")}, {}, "content"),
    ],
)
async def test_bad_uploads_are_422_problems(
    files: dict[str, tuple[str, bytes, str]], data: dict[str, str], needle: str
) -> None:
    async with in_process(SimConfig(latency=0)) as (client, app, _clock):
        response = await client.post("/files", files=files, data=data)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert needle in response.json()["detail"]
        assert app.stats()["files_uploaded"] == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b'--x\r\nContent-Disposition: form-data; name="content"\r\n\r\nabc',
            "multipart/form-data; boundary=x",
        ),
        (b"garbage", "multipart/form-data; boundary="),
        (b"garbage", "multipart/form-data"),
    ],
)
async def test_malformed_multipart_is_a_400_problem(body: bytes, content_type: str) -> None:
    async with in_process(SimConfig(latency=0)) as (client, _app, _clock):
        response = await client.post("/files", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("type_", ["image/p\u0113ng", "image/png\x07", "image/png\r\nX-Injected: 1"])
def test_a_bad_type_never_breaks_later_requests_over_a_socket(type_: str) -> None:
    """Served by uvicorn: whatever ``type`` an upload claims, the upload and every later request for the
    file get an HTTP answer below 500 (before: a 500, or the connection dropped mid-response)."""
    with (
        serve_in_thread(create_app(SimConfig(latency=0))) as base,
        httpx.Client(base_url=base + "/v1", headers={"Authorization": "Bearer t"}) as client,
    ):
        created = client.post("/files", files={"content": ("a.png", PNG, "image/png")}, data={"type": type_})
        assert created.status_code < 500
        if created.status_code == 201:
            file_id = created.json()["id"]
            for path in (f"/files/{file_id}", f"/files/{file_id}/download", "/files"):
                assert client.get(path).status_code == 200
