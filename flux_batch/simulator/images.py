"""Deterministic stand-in images: real PNG, JPEG or WebP files drawn with Pillow.

An image is a pure function of its :class:`ImageSpec` (model, prompt, seed, other inputs, index, size,
format): the prompt picks the colour family, the seed and the other inputs the pattern, and the prompt's
first words are drawn in, so a gallery of outputs shows what varied. To stay cheap at one megapixel the
pattern is drawn at a quarter of the size and scaled up by repeating pixels (a smooth scaling cost 2-6 ms
an image, more than the rest of the drawing); fonts and finished files are cached.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from flux_batch.jobs.ids import canonical_json
from flux_batch.models.catalog import ModelSpec
from flux_batch.models.sizes import SIZE_INPUTS, output_size

#: Inputs that decide the size or format of an image and so are not part of its pattern.
_LAYOUT_INPUTS = frozenset(
    {"prompt", "seed", "aspect_ratio", "width", "height", "output_format", "output_quality", *SIZE_INPUTS}
)
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_BYTES_PER_PIXEL = {"png": 1.4, "jpg": 0.35, "webp": 0.25}  # typical of FLUX photos at quality 80
_BASE = 96  # the smallest long side of the pattern that is scaled up
_UPSCALE = 4  # the pattern is drawn at 1/_UPSCALE of the output's size


@dataclass(frozen=True)
class ImageSpec:
    """What one output image depends on; equal specs always give identical bytes."""

    prompt: str
    seed: int
    pattern_key: str  # the hash of the model and every input that is not layout
    width: int
    height: int
    fmt: str  # png | jpg | webp
    quality: int = 80

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    @property
    def estimated_bytes(self) -> int:
        """About what a real model's file of this size and format weighs (for the logs, which must not
        render the image to learn the size of the file actually served)."""
        jitter = 0.85 + int(self.pattern_key[:4], 16) / 0xFFFF * 0.3
        return int(self.width * self.height * _BYTES_PER_PIXEL[self.fmt] * jitter)


def image_spec(
    spec: ModelSpec,
    input: Mapping[str, Any],
    seed: int,
    index: int,
    input_size: tuple[int, int] | None = None,
) -> ImageSpec:
    """The spec of output ``index`` of a prediction of ``spec`` with ``input`` and the actual ``seed``."""
    values = {**spec.defaults, **input}
    pattern = {k: v for k, v in values.items() if k not in _LAYOUT_INPUTS}
    key = hashlib.sha256(
        canonical_json({"model": spec.name, "input": pattern, "index": index}).encode()
    ).hexdigest()
    width, height = output_size(values, input_size)
    fmt = str(values.get("output_format", "webp"))
    if fmt not in _PIL_FORMATS:
        fmt = "webp"
    return ImageSpec(
        str(values.get("prompt", "")),
        seed,
        key[:16],
        width,
        height,
        fmt,
        int(values.get("output_quality", 80)),
    )


@functools.lru_cache(maxsize=256)
def render(spec: ImageSpec) -> bytes:
    """The encoded image for ``spec`` (cached: the same spec is drawn once)."""
    image = _pattern(spec).resize((spec.width, spec.height), Image.Resampling.NEAREST)
    _caption(image, spec)
    out = io.BytesIO()
    if spec.fmt == "png":
        image.save(out, "PNG", compress_level=1)
    elif spec.fmt == "jpg":
        image.save(out, "JPEG", quality=max(1, spec.quality))
    else:
        image.save(out, "WEBP", quality=spec.quality, method=0)
    return out.getvalue()


def _palette(text: str, count: int) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(text.encode()).digest()
    base = digest[0] / 255
    colours = []
    for i in range(count):
        hue = (base + (digest[i + 1] / 255 - 0.5) * 0.25) % 1.0
        sat = 0.45 + digest[i + 9] / 255 * 0.5
        val = 0.35 + digest[i + 17] / 255 * 0.6
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _pattern(spec: ImageSpec) -> Image.Image:
    """A small picture: a smooth field of the prompt's colours with seed-placed shapes on top."""
    scale = max(_BASE / max(spec.width, spec.height), 1 / _UPSCALE)
    w, h = max(8, round(spec.width * scale)), max(8, round(spec.height * scale))
    colours = _palette(spec.prompt, 8)
    layout = hashlib.sha256(f"{spec.seed}:{spec.pattern_key}".encode()).digest()
    field = Image.new("RGB", (3, 3))
    field.putdata([colours[b % 8] for b in layout[:9]])
    image = field.resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x, y = layout[9 + i] / 255 * w, layout[15 + i] / 255 * h
        r = (0.08 + layout[21 + i] / 255 * 0.25) * min(w, h)
        box = (x - r, y - r, x + r, y + r)
        colour = colours[(layout[27 + i // 2] + i) % 8]
        if layout[i] % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    return image


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _caption(image: Image.Image, spec: ImageSpec) -> None:
    words = " ".join(spec.prompt.split()[:5]) or "(no prompt)"
    size = max(12, min(image.width, image.height) // 18)
    font = _font(size)
    draw = ImageDraw.Draw(image)
    margin = size // 2
    y = image.height - 2 * size - 2 * margin
    draw.rectangle((0, y - margin, image.width, image.height), fill=(0, 0, 0))
    draw.text((margin, y), words, font=font, fill=(255, 255, 255))
    draw.text(
        (margin, y + size + margin // 2),
        f"seed {spec.seed}",
        font=_font(max(10, size * 2 // 3)),
        fill=(200, 200, 200),
    )
