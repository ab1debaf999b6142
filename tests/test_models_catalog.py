"""The model registry (flux_batch/models/catalog.py): schemas, prices, references, input checks."""

from __future__ import annotations

import pytest

from flux_batch.models.catalog import check_input, get_model, known_models, split_ref, suggest

PRO = "black-forest-labs/flux-pro"
KONTEXT = "black-forest-labs/flux-kontext-pro"


def test_known_models_with_prices_and_outputs() -> None:
    specs = known_models()
    assert len(specs) == 13  # seven FLUX.1, six FLUX.2
    assert specs[PRO].price_usd == 0.055 and specs[PRO].output == "url"
    assert specs["black-forest-labs/flux-schnell"].output == "list"
    assert specs[KONTEXT].image_inputs == ("input_image",)
    assert specs[PRO].defaults["guidance"] == 3


def test_price_override_and_unknown_models() -> None:
    assert get_model(PRO, 0.1).price_usd == 0.1
    unknown = get_model("someone/thing", 0.02)
    assert not unknown.known and unknown.price_usd == 0.02
    assert check_input(unknown, {"anything": 1}) == []


def test_split_ref() -> None:
    assert split_ref(PRO) == (PRO, None)
    version = "a" * 64
    assert split_ref(f"{PRO}:{version}") == (PRO, version)
    with pytest.raises(ValueError):
        split_ref("flux-pro")


def test_images_per_prediction() -> None:
    schnell = get_model("black-forest-labs/flux-schnell")
    assert schnell.images_per_prediction({"num_outputs": 3}) == 3
    assert schnell.images_per_prediction({}) == 1
    assert get_model(PRO).images_per_prediction({"num_outputs": 3}) == 1


def test_check_input_valid_and_problems() -> None:
    spec = get_model(PRO)
    assert check_input(spec, {"prompt": "x", "guidance": 3}) == []
    (problem,) = check_input(spec, {"prompt": "x", "guidence": 3})
    assert problem.message == f"{PRO} has no input 'guidence'" and problem.hint == "did you mean 'guidance'?"
    (problem,) = check_input(spec, {"prompt": "x", "aspect_ratio": "custom", "width": 1000, "height": 1024})
    assert (problem.path, problem.hint) == ("width", "try 992")


def test_cross_field_rules() -> None:
    kontext = get_model(KONTEXT)
    ref = {"$upstream": "abc", "output": 0}
    (problem,) = check_input(kontext, {"prompt": "x", "input_image": ref, "safety_tolerance": 5})
    assert "at most 2 with an input image" in problem.message
    assert check_input(kontext, {"prompt": "x", "safety_tolerance": 5}) == []
    warnings = check_input(get_model(PRO), {"prompt": "x", "width": 1024, "height": 1024})
    assert {w.severity for w in warnings} == {"warning"} and len(warnings) == 2


def test_suggest() -> None:
    assert suggest("guidence", ["guidance", "steps"]) == "did you mean 'guidance'?"
    assert suggest("zzz", ["guidance"]) == ""
