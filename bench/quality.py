"""CPU per downloaded image of the quality check (perceptual hash and bad-sample flags), next to the
download's other per-image work.

    python bench/quality.py [--repeat 20]

``flux_batch.outputs.quality.inspect_image`` runs once per downloaded file (since #15 in a worker
process, with the thumbnail: ``flux_batch.outputs.derived.derive``, the last column):
it decodes the whole image, converts it to RGB, measures a 64 x 64 grey copy (blank) and takes
``imagehash.phash``. This prints its CPU time per image (``time.process_time``, the median of
``--repeat`` calls) on the simulator's images (flux-schnell's default 1:1 WebP and its PNG and JPEG, 1 MP)
and on a 1024 x 1024 photographic-like picture (noise over several scales, as a photo's detail is) in
WebP, JPEG and PNG; then, on the same files, the full decode alone (the floor of any check that looks at
the pixels), the sha256 of the bytes (done while downloading) and a report thumbnail
(``make_thumbnail``: what the run already decodes each image for), and both from one decode as the run
makes them (``derive``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from flux_batch.models.catalog import get_model
from flux_batch.outputs.derived import derive
from flux_batch.outputs.quality import inspect_image
from flux_batch.report.thumbnails import make_thumbnail
from flux_batch.simulator.images import image_spec, render


def photo_like(size: int = 1024, seed: int = 7) -> Image.Image:
    """Smooth colour fields with detail at every scale, as a photograph has (not flat like a drawing)."""
    rng = random.Random(seed)
    bands = []
    for _ in range(3):
        band = Image.new("L", (size, size), 128)
        for octave in (4, 16, 64, 256, size):
            noise = Image.frombytes("L", (octave, octave), rng.randbytes(octave * octave))
            layer = noise.resize((size, size), Image.Resampling.BICUBIC)
            band = Image.blend(band, layer, 0.5 if octave < size else 0.15)
        bands.append(band)
    return Image.merge("RGB", bands)


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 80} if fmt in ("WEBP", "JPEG") else {}))
    return buf.getvalue()


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    """Median CPU milliseconds of ``call``."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        call()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    schnell = get_model("black-forest-labs/flux-schnell")
    cases: list[tuple[str, bytes]] = []
    for fmt in ("webp", "png", "jpg"):
        spec = image_spec(schnell, {"prompt": "a red fox in the snow", "output_format": fmt}, 42, 0)
        cases.append((f"simulator {spec.width}x{spec.height} {fmt}", render(spec)))
    photo = photo_like()
    for fmt in ("WEBP", "JPEG", "PNG"):
        cases.append((f"photo-like 1024x1024 {fmt.lower()}", encode(photo, fmt)))
    inspect_image(cases[0][1])  # imports numpy, scipy and imagehash once, outside the timings
    print(f"CPU ms per image, median of {args.repeat}")
    print(f"{'image':<30} {'kB':>6} {'quality':>8} {'decode':>7} {'sha256':>7} {'thumb':>7} {'both':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "images").mkdir()
        for name, data in cases:
            rel = f"images/{len(data)}.bin"
            (out / rel).write_bytes(data)
            row = [
                cpu_ms(lambda d=data: inspect_image(d), args.repeat),
                cpu_ms(lambda d=data: decode(d), args.repeat),
                cpu_ms(lambda d=data: hashlib.sha256(d).digest(), args.repeat),
                cpu_ms(lambda r=rel: make_thumbnail(out, r), args.repeat),
                cpu_ms(lambda r=rel: derive(str(out), r, True), args.repeat),
            ]
            print(f"{name:<30} {len(data) / 1000:6.0f} " + " ".join(f"{v:7.1f}" for v in row))


if __name__ == "__main__":
    main()
