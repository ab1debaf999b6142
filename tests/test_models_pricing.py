"""Prices per image and per megapixel (flux_batch/models/pricing.py, sizes.py) and what the FLUX.2 schemas
state."""

from __future__ import annotations

import pytest

from flux_batch.models.catalog import get_model
from flux_batch.models.pricing import Price, Rate, parse_price
from flux_batch.models.sizes import billed_output_megapixels, output_size

PRO2 = "black-forest-labs/flux-2-pro"


def test_a_number_is_a_price_per_image() -> None:
    price = parse_price(0.04)
    assert price is not None and price.cost({}, images=3) == pytest.approx(0.12)


def test_megapixel_rates_count_the_run_the_inputs_and_the_output() -> None:
    price = Price((Rate(per_run=0.015, per_input_mp=0.015, per_output_mp=0.015),))
    assert price.cost({}, output_mp=2, input_mp=[1, 1, 1]) == pytest.approx(0.015 * 6)


def test_the_first_rate_that_applies_is_used() -> None:
    price = parse_price([{"when": {"go_fast": False}, "per_output_mp": 0.014}, {"per_output_mp": 0.012}])
    assert price is not None
    assert price.cost({"go_fast": False}) == pytest.approx(0.014)
    assert price.cost({"go_fast": True}) == pytest.approx(0.012)


@pytest.mark.parametrize(
    ("input", "cost"),
    [
        ({}, 0.03),  # 1 MP text to image: $0.015 a run + 1 MP out
        ({"resolution": "2 MP"}, 0.045),  # billed 2 MP though the sides round to a little over
        ({"resolution": "4 MP", "input_images": ["https://x/a.png", "https://x/b.png"]}, 0.105),
        ({"aspect_ratio": "custom", "width": 2048, "height": 1024}, 0.045),
    ],
)
def test_flux_2_pro_costs_by_megapixels(input: dict[str, object], cost: float) -> None:
    assert get_model(PRO2).cost({"prompt": "p", **input}) == pytest.approx(cost)


def test_flux_2_dev_rate_follows_go_fast_and_flux_1_stays_per_image() -> None:
    dev = get_model("black-forest-labs/flux-2-dev")
    assert dev.cost({"prompt": "p"}) == pytest.approx(0.012)
    assert dev.cost({"prompt": "p", "go_fast": False}) == pytest.approx(0.014)
    schnell = get_model("black-forest-labs/flux-schnell")
    assert schnell.cost({"prompt": "p", "num_outputs": 4, "megapixels": "1"}) == pytest.approx(0.012)


def test_a_manifest_price_override_may_be_rates() -> None:
    spec = get_model(PRO2, {"per_output_mp": 0.5})
    assert spec.cost({"prompt": "p", "resolution": "4 MP"}) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("values", "size"),
    [
        ({"resolution": "1 MP"}, (1024, 1024)),
        ({"resolution": "0.5 MP", "aspect_ratio": "16:9"}, (960, 544)),
        ({"output_megapixels": "4"}, (2048, 2048)),
        ({"aspect_ratio": "custom", "width": 512, "height": 768}, (512, 768)),
    ],
)
def test_flux_2_sizes(values: dict[str, object], size: tuple[int, int]) -> None:
    assert output_size(values) == size


def test_match_input_image_keeps_the_input_aspect_at_the_asked_resolution() -> None:
    assert output_size({"aspect_ratio": "match_input_image", "resolution": "1 MP"}, (2000, 1000)) == (
        1456,
        720,
    )
    # a model with no size input (kontext) keeps the input image's size
    assert output_size({"aspect_ratio": "match_input_image"}, (640, 480)) == (640, 480)
    assert billed_output_megapixels({"aspect_ratio": "custom", "width": 1024, "height": 1024}) == 1
