"""Stand-in images: deterministic, real files of the requested size and format, different per prompt/seed."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from flux_batch.models.catalog import get_model
from flux_batch.simulator.images import image_spec, output_size, render

PRO = get_model("black-forest-labs/flux-pro")


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("fmt", "pil"), [("webp", "WEBP"), ("jpg", "JPEG"), ("png", "PNG")])
def test_formats_are_real_files(fmt: str, pil: str) -> None:
    spec = image_spec(PRO, {"prompt": "a lighthouse", "output_format": fmt}, 1, 0)
    image = decode(render(spec))
    assert image.format == pil and image.size == (1024, 1024)


def test_same_request_same_bytes_and_differences_show() -> None:
    def make(**input: Any) -> bytes:
        seed = input.pop("seed", 1)
        spec = image_spec(PRO, {"prompt": "a lighthouse", "output_format": "png", **input}, seed, 0)
        render.cache_clear()
        return render(spec)

    assert make() == make()
    assert make() != make(seed=2)
    assert make() != make(prompt="a harbour")
    assert make() != make(guidance=4)


@pytest.mark.parametrize(
    ("values", "size"),
    [
        ({"aspect_ratio": "1:1"}, (1024, 1024)),
        ({"aspect_ratio": "16:9"}, (1360, 768)),
        ({"aspect_ratio": "custom", "width": 512, "height": 768}, (512, 768)),
        ({"aspect_ratio": "1:1", "megapixels": "0.25"}, (512, 512)),
        ({"aspect_ratio": "1:1", "raw": False}, (2048, 2048)),
        ({"aspect_ratio": "match_input_image"}, (1024, 1024)),
    ],
)
def test_output_size(values: dict[str, Any], size: tuple[int, int]) -> None:
    assert output_size(values) == size


def test_match_input_image_uses_the_known_size() -> None:
    assert output_size({"aspect_ratio": "match_input_image"}, (640, 480)) == (640, 480)
    # An upload's header can claim any size: drawing 60,000 x 40,000 pixels would take ~7 GB.
    assert output_size({"aspect_ratio": "match_input_image"}, (60000, 40000)) == (2508, 1672)
    kontext = get_model("black-forest-labs/flux-kontext-pro")
    spec = image_spec(kontext, {"prompt": "x", "input_image": "http://x/y.png"}, 3, 0, (320, 240))
    assert (spec.width, spec.height, spec.fmt) == (320, 240, "png")
