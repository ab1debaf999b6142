"""Fidelity against code we did not write: the official Python client ``replicate`` (1.x), unchanged, against
the simulator served over HTTPS (``--tls``) and trusted the documented way (``SSL_CERT_FILE``).

Covers what a script written for Replicate does: run (with ``FileOutput``), create and wait, async,
pinned versions (the client sends a bare 64-hex id, then fetches the version), pagination over several
pages, the files API and file inputs, and errors.
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread
from flux_batch.simulator.tls import make_tls

pytestmark = pytest.mark.slow
TOKEN = "r8_official_client"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The simulator over HTTPS, and its certificate authority's PEM."""
    folder = tmp_path_factory.mktemp("tls")
    tls = make_tls(folder)
    app = create_app(SimConfig(latency=0.2, seed=1, create_rpm=0, other_rpm=0))
    with serve_in_thread(app, tls=tls) as url:
        yield url, tls.write_ca(folder / "ca.pem")


@pytest.fixture
def client(served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> replicate.Client:
    url, ca = served
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # what docs/simulator.md tells a user to do
    made = replicate.Client(api_token=TOKEN, base_url=url)
    made.poll_interval = 0.05
    return made


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_run_gives_file_outputs_over_tls(client: replicate.Client, served: tuple[str, Path]) -> None:
    output = client.run(
        "black-forest-labs/flux-pro",
        input={"prompt": "a lighthouse at dusk", "aspect_ratio": "3:2", "seed": 5},
    )
    assert isinstance(output, FileOutput) and output.url.startswith(f"{served[0]}/delivery/")
    image = image_of(output.read())
    assert image.format == "WEBP" and image.width > image.height
    outputs = client.run("black-forest-labs/flux-schnell", input={"prompt": "two cats", "num_outputs": 2})
    assert [type(o) for o in outputs] == [FileOutput, FileOutput]
    assert all(image_of(o.read()).format == "WEBP" for o in outputs)


def test_create_wait_and_reload(client: replicate.Client) -> None:
    prediction = client.models.predictions.create(
        model="black-forest-labs/flux-schnell", input={"prompt": "two cats", "num_outputs": 2}
    )
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and len(prediction.output) == 2
    assert "Using seed:" in prediction.logs and prediction.metrics and prediction.metrics["predict_time"] > 0
    assert client.predictions.get(prediction.id).output == prediction.output
    canceled = client.models.predictions.create(model="black-forest-labs/flux-dev", input={"prompt": "x"})
    canceled.cancel()
    canceled.reload()
    assert canceled.status == "canceled"


def test_a_pinned_version_runs_as_the_client_sends_it(client: replicate.Client) -> None:
    model = client.models.get("black-forest-labs/flux-schnell")
    version = model.latest_version
    assert version is not None and set(version.openapi_schema["components"]["schemas"]) == {"Input", "Output"}
    inputs = version.openapi_schema["components"]["schemas"]["Input"]["properties"]
    assert {"prompt", "num_outputs", "aspect_ratio"} <= set(inputs)
    assert [v.id for v in model.versions.list()] == [version.id]
    output = client.run(f"black-forest-labs/flux-schnell:{version.id}", input={"prompt": "a kite"})
    assert isinstance(output, list) and isinstance(output[0], FileOutput)
    prediction = client.predictions.create(version=version.id, input={"prompt": "a kite"})
    assert prediction.version == version.id and prediction.model == "black-forest-labs/flux-schnell"


def test_async_run_and_create(client: replicate.Client) -> None:
    async def main() -> tuple[bytes, str]:
        output = await client.async_run("black-forest-labs/flux-1.1-pro", input={"prompt": "fog"})
        assert isinstance(output, FileOutput)
        prediction = await client.models.predictions.async_create(
            model="black-forest-labs/flux-pro", input={"prompt": "rain"}
        )
        await prediction.async_wait()
        return await output.aread(), prediction.status

    data, status = asyncio.run(main())
    assert image_of(data).format == "WEBP" and status == "succeeded"


def test_pagination_over_several_pages(client: replicate.Client, served: tuple[str, Path]) -> None:
    url, ca = served
    trust = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(base_url=url, verify=trust, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        created = [
            http.post(
                "/v1/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": f"p{i}"}}
            ).json()["id"]
            for i in range(205)
        ]
    pages = list(replicate.paginate(client.predictions.list))
    assert len(pages) >= 3 and all(len(page.results) == 100 for page in pages[:2])
    listed = [p.id for page in pages for p in page.results]
    assert len(listed) == len(set(listed))
    assert listed[: len(created)] == created[::-1]


def test_files_and_file_inputs(client: replicate.Client, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (640, 480), "red").save(path)
    uploaded = client.files.create(path, metadata={"job": 1})
    assert uploaded.name == "photo.png" and uploaded.content_type == "image/png"
    assert uploaded.size == path.stat().st_size and uploaded.metadata == {"job": 1}
    assert client.files.get(uploaded.id).checksums == uploaded.checksums
    assert uploaded.id in [f.id for f in client.files.list()]
    with path.open("rb") as photo:
        edited = client.run(
            "black-forest-labs/flux-kontext-pro", input={"prompt": "make it blue", "input_image": photo}
        )
    assert isinstance(edited, FileOutput) and image_of(edited.read()).size == (640, 480)
    assert client.files.delete(uploaded.id)
    with pytest.raises(ReplicateError) as gone:
        client.files.get(uploaded.id)
    assert gone.value.status == 404


def test_errors_surface_as_replicate_errors(client: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as excinfo:
        client.models.predictions.create(
            model="black-forest-labs/flux-pro", input={"prompt": "x", "guidance": 99}
        )
    assert excinfo.value.status == 422 and "guidance" in str(excinfo.value.detail)
    with pytest.raises(ReplicateError) as unknown:
        client.run("black-forest-labs/flux-nope", input={"prompt": "x"})
    assert unknown.value.status == 404
