"""Clean data: a perceptual hash per image, and flags for samples a dataset should not hold.

Flags (a sample may carry several, joined by ``;`` in the tables):

* ``undecodable``: Pillow cannot decode the whole file (a truncated or damaged image).
* ``blank``: the image is one colour or nearly so: the standard deviation of its grey levels, on a
  64 x 64 copy, is under :data:`BLANK_STDDEV` (of 255). A safety filter's answer is often a black image.
* ``wrong_size``: the image is not the size the job asked for: an explicit ``width``/``height`` off by
  more than :data:`SIZE_SLACK_PX` pixels (FLUX rounds sizes to multiples of 16 or 32), or an
  ``aspect_ratio`` ``W:H`` off by more than :data:`RATIO_SLACK` (FLUX's sizes for 16:9 are 1.75, not 1.78).

The perceptual hash is ``imagehash.phash`` (64 bits, written as 16 hex digits): two images whose hashes
differ in at most :data:`DEDUPE_DISTANCE` bits are near-duplicates (see :mod:`flux_batch.export.dedupe`).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageStat

BLANK_STDDEV = 3.0
#: Hashes at most this many bits apart (of 64) are near-duplicates: the same picture re-encoded, resized or
#: touched up differs by a few bits; two seeds of one prompt differ by far more (about 32 when unrelated).
DEDUPE_DISTANCE_DEFAULT = 4
SIZE_SLACK_PX = 32
RATIO_SLACK = 0.05
UNDECODABLE, BLANK, WRONG_SIZE = "undecodable", "blank", "wrong_size"
FLAGS = (UNDECODABLE, BLANK, WRONG_SIZE)
#: Not a flag of the image itself: what the tally and the report call a near-duplicate of an earlier image.
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class Quality:
    """An image's perceptual hash (None when it cannot be decoded) and its flags, in :data:`FLAGS` order."""

    phash: str | None
    flags: tuple[str, ...] = ()

    @property
    def flag_text(self) -> str:
        return ";".join(self.flags)


def requested_size(inputs: Mapping[str, Any]) -> tuple[str, tuple[float, float]] | None:
    """What the job asked for: ``("pixels", (w, h))``, ``("ratio", (w, h))`` or None (no way to tell:
    ``match_input_image``, no size inputs)."""
    ratio = inputs.get("aspect_ratio")
    width, height = inputs.get("width"), inputs.get("height")
    if ratio in (None, "custom") and _number(width) and _number(height):
        return "pixels", (float(width), float(height))  # type: ignore[arg-type]
    if isinstance(ratio, str) and ratio.count(":") == 1:
        a, b = ratio.split(":")
        try:
            w, h = float(a), float(b)
        except ValueError:
            return None
        if w > 0 and h > 0:
            return "ratio", (w, h)
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def wrong_size(size: tuple[int, int], request: tuple[str, tuple[float, float]] | None) -> bool:
    """Whether an image of ``size`` (width, height) is not what ``request`` asked for."""
    if request is None:
        return False
    kind, (w, h) = request
    if kind == "pixels":
        return abs(size[0] - w) > SIZE_SLACK_PX or abs(size[1] - h) > SIZE_SLACK_PX
    if size[1] <= 0:
        return True
    return abs((size[0] / size[1]) / (w / h) - 1) > RATIO_SLACK


def with_size_flag(flags: Iterable[str], size: tuple[int, int], inputs: Mapping[str, Any]) -> str:
    """``flags`` as the tables write them, with ``wrong_size`` when ``size`` is not what ``inputs`` asked."""
    found = set(flags)
    if WRONG_SIZE not in found and wrong_size(size, requested_size(inputs)):
        found.add(WRONG_SIZE)
    return ";".join(f for f in FLAGS if f in found)


def inspect_image(
    data: bytes,
    inputs: Mapping[str, Any] | None = None,
    *,
    then: Callable[[Image.Image], None] | None = None,
) -> Quality:
    """Decode ``data`` once: its perceptual hash and its flags against the job's ``inputs``. ``then`` is
    handed the decoded image afterwards (and may change it): the thumbnail is made from the same decode."""
    import imagehash  # numpy and scipy: only where images are hashed

    decoded = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = image.size
            rgb = image.convert("RGB")
            decoded = True
            if then is not None:
                then(image)  # its failure is the caller's (a full disk), never "undecodable"
    except Exception:  # Pillow raises many types for a damaged file; any of them means undecodable
        if decoded:
            raise
        return Quality(None, (UNDECODABLE,))
    flags = []
    grey = rgb.convert("L").resize((64, 64), Image.Resampling.BOX)
    if ImageStat.Stat(grey).stddev[0] < BLANK_STDDEV:
        flags.append(BLANK)
    if wrong_size(size, requested_size(inputs or {})):
        flags.append(WRONG_SIZE)
    return Quality(str(imagehash.phash(rgb)), tuple(flags))


def parse_flags(text: Any) -> tuple[str, ...]:
    """Flags as the tables write them (``blank;wrong_size``), back as a tuple."""
    return tuple(f for f in str(text or "").split(";") if f)


@dataclass
class Tally:
    """A folder's bad samples and near-duplicates, counted as ``flux-batch export`` with its defaults and
    ``--dedupe`` leaves them out: each flag, the images with any, and, among the others in manifest order,
    the near-duplicates of an earlier image (within :data:`DEDUPE_DISTANCE_DEFAULT` bits). Fed one image at a
    time, in one pass, as the tables and the report are written."""

    by_flag: Counter[str] = field(default_factory=Counter)
    flagged: int = 0
    near_duplicates: int = 0
    _near: Any = field(default=None, repr=False, compare=False)  # NearDuplicates, made at the first hash

    def add(self, flags: Any, phash: Any) -> tuple[str, ...]:
        """Count an image by its table cells; return its labels: its flags, or :data:`NEAR_DUPLICATE`."""
        found = parse_flags(flags)
        if found:
            self.flagged += 1
            self.by_flag.update(found)
            return found
        if not phash:
            return ()
        if self._near is None:
            from flux_batch.export.dedupe import NearDuplicates

            self._near = NearDuplicates(DEDUPE_DISTANCE_DEFAULT)
        if self._near.seen(str(phash)):
            self.near_duplicates += 1
            return (NEAR_DUPLICATE,)
        return ()

    def summary(self) -> dict[str, Any]:
        """For run.json's summary: ``flagged`` (images), ``flags`` (by flag) and ``near_duplicates``."""
        flags = {f: self.by_flag[f] for f in FLAGS if self.by_flag[f]}
        return {"flagged": self.flagged, "flags": flags, "near_duplicates": self.near_duplicates}


def describe(summary: Mapping[str, Any]) -> str:
    """``3 flagged: 2 blank, 1 wrong size; 4 near-duplicates`` from :meth:`Tally.summary`; "" for none."""
    parts = []
    if summary.get("flagged"):
        flags = summary.get("flags") or {}
        each = ", ".join(f"{n:,} {flag.replace('_', ' ')}" for flag, n in flags.items())
        parts.append(f"{summary['flagged']:,} flagged" + (f": {each}" if each else ""))
    if summary.get("near_duplicates"):
        n = summary["near_duplicates"]
        parts.append(f"{n:,} near-duplicate{'' if n == 1 else 's'}")
    return "; ".join(parts)
