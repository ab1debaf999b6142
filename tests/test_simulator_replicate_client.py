"""Fidelity against code we did not write: the official ``replicate`` client, served over loopback."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimConfig(latency=0.2, seed=1))) as url:
        yield url


def make_client(base_url: str) -> replicate.Client:
    client = replicate.Client(api_token="r8_official_client", base_url=base_url)
    client.poll_interval = 0.05
    return client


def test_run_flux_pro_and_read_the_image(base_url: str) -> None:
    client = make_client(base_url)
    output = client.run(
        "black-forest-labs/flux-pro",
        input={"prompt": "a lighthouse at dusk", "aspect_ratio": "3:2", "seed": 5},
    )
    # The client wraps only https: URLs in FileOutput; over plain loopback HTTP it returns the URL itself,
    # which we read through the client's own FileOutput (its HTTP connection and headers).
    assert isinstance(output, str) and output.startswith(f"{base_url}/delivery/")
    image = Image.open(io.BytesIO(FileOutput(output, client).read()))
    image.load()
    assert image.format == "WEBP" and image.width > image.height


def test_create_wait_and_list(base_url: str) -> None:
    client = make_client(base_url)
    prediction = client.models.predictions.create(
        model="black-forest-labs/flux-schnell", input={"prompt": "two cats", "num_outputs": 2}
    )
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and len(prediction.output) == 2
    assert "Using seed:" in prediction.logs
    assert prediction.id in [p.id for p in client.predictions.list().results]


def test_errors_surface_as_replicate_errors(base_url: str) -> None:
    with pytest.raises(ReplicateError) as excinfo:
        make_client(base_url).models.predictions.create(
            model="black-forest-labs/flux-pro", input={"prompt": "x", "guidance": 99}
        )
    assert excinfo.value.status == 422 and "guidance" in str(excinfo.value.detail)
