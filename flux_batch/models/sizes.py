"""Image sizes and megapixels: what size an input asks for, and how many megapixels are billed.

Pure arithmetic over a model input (with the model's defaults applied), shared by the price estimates of
``plan`` and the simulator's images, so the two agree. The inputs that set a size differ by model:
``aspect_ratio`` (``custom`` uses ``width``/``height``; ``match_input_image`` the input's size),
``megapixels`` (FLUX.1 schnell/dev), ``resolution`` (FLUX.2 pro/flex/max: ``"1 MP"``) and
``output_megapixels`` (FLUX.2 klein: ``"1"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DEFAULT_SIZE = (1024, 1024)
#: One billed megapixel: 1024 x 1024 pixels, as the FLUX.2 price notes count it (third-party, unconfirmed).
MEGAPIXEL = 1024 * 1024
MAX_PIXELS = 4 * MEGAPIXEL


SIZE_INPUTS = ("resolution", "output_megapixels", "megapixels")


def requested_megapixels(values: Mapping[str, Any]) -> float | None:
    """The megapixels an input asks for; None when it asks for the input image's."""
    for key in SIZE_INPUTS:
        if key in values:
            text = str(values[key]).replace("MP", "").strip()
            try:
                return float(text)
            except ValueError:
                return None  # "match_input_image"
    if "raw" in values or "image_prompt_strength" in values:  # flux-1.1-pro-ultra makes 4 megapixels
        return 4.0
    return 1.0


def output_size(values: Mapping[str, Any], input_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Width and height of the image an input asks for (sizes are multiples of 16). ``input_size`` is the
    first input image's, where known; a model with no size input keeps an input image's size."""
    ratio = str(values.get("aspect_ratio", "1:1"))
    if ratio == "custom":
        return _side(values.get("width")), _side(values.get("height"))
    megapixels = requested_megapixels(values)
    source = bounded(input_size) if input_size else DEFAULT_SIZE
    if ratio == "match_input_image":
        if megapixels is None or not any(key in values for key in SIZE_INPUTS):
            return source
        return _scaled(source[0] / source[1], megapixels)
    if megapixels is None:
        megapixels = source[0] * source[1] / MEGAPIXEL
    return _scaled(_aspect(ratio), megapixels)


def _side(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1024


def _aspect(ratio: str) -> float:
    a, _, b = ratio.partition(":")
    try:
        return float(a) / float(b)
    except (ValueError, ZeroDivisionError):
        return 1.0


def _scaled(aspect: float, megapixels: float) -> tuple[int, int]:
    area = megapixels * MEGAPIXEL
    return round(math.sqrt(area * aspect) / 16) * 16, round(math.sqrt(area / aspect) / 16) * 16


def bounded(size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """A size scaled down to at most ``max_pixels`` (an upload can claim any size in its header)."""
    width, height = max(size[0], 1), max(size[1], 1)
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(16, round(width * scale)), max(16, round(height * scale))


def billed_megapixels(width: int, height: int) -> int:
    """Megapixels as billed: rounded up to the next whole megapixel, at least one (third-party notes
    on Replicate's FLUX.2 prices say so; unconfirmed)."""
    return max(1, math.ceil(width * height / MEGAPIXEL - 1e-9))


def billed_output_megapixels(values: Mapping[str, Any], input_size: tuple[int, int] | None = None) -> int:
    """The output megapixels an input is billed for: the megapixels it asks for where it names them
    (``resolution: "2 MP"`` is 2, though its sides round to a size a little over), else its size's."""
    if str(values.get("aspect_ratio", "1:1")) != "custom":
        megapixels = requested_megapixels(values)
        if megapixels is not None and any(key in values for key in SIZE_INPUTS):
            return max(1, math.ceil(megapixels - 1e-9))
    return billed_megapixels(*output_size(values, input_size))
