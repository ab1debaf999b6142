"""Stable identity: canonical JSON hashing, job ids, derived seeds and safe file-name slugs.

Everything here is pure. A job's id is the hash of its canonical resolved request, so the same manifest
gives the same ids on every run and machine, and any change to what would be sent changes the id.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

#: Seeds stay in the signed 32-bit range that every FLUX backend accepts.
SEED_MODULUS = 2**31
ID_HEX_DIGITS = 16


#: One encoder for every hash (``json.dumps`` with these options builds one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _normalise(value: Any) -> Any:
    # 3 and 3.0 are the same request to the API; hash them alike so YAML spelling does not change ids.
    # The plain types are told by their exact type first: an isinstance check against Mapping costs more
    # than the rest of a job's hashing (a subclass, a mapping proxy, take the general rules below).
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): _normalise(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and integral floats as integers: the basis of every hash."""
    return _ENCODER.encode(_normalise(value))


def content_hash(value: Any, digits: int = ID_HEX_DIGITS) -> str:
    """The first ``digits`` hex digits of the SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:digits]


def job_id(model: str, version: str | None, input: Mapping[str, Any], upstream: Sequence[str] = ()) -> str:
    """The id of the request ``model``/``version`` with ``input`` (seed included) fed by ``upstream`` jobs."""
    return content_hash({"model": model, "version": version, "input": input, "upstream": sorted(upstream)})


def derive_seed(base_seed: int, stage: str, key: Mapping[str, Any]) -> int:
    """A seed from the base seed, the stage and the job's sweep values (never its position).

    Adding a value to an axis, or a stage, leaves every existing job's ``key`` and so its seed unchanged.
    """
    digest = hashlib.sha256(
        canonical_json({"base_seed": base_seed, "stage": stage, "key": key}).encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") % SEED_MODULUS


_UNSAFE = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = 40) -> str:
    """A short lowercase ``a-z0-9-`` slug: nothing in it can make a path leave its folder."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = _UNSAFE.sub("-", ascii_text).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    return slug.strip("-") or "image"
