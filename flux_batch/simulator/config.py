"""The simulator's settings: :class:`SimConfig`, fault specs, and loading them from a YAML profile.

A profile is a YAML mapping with the same keys as :class:`SimConfig` (see ``docs/simulator.md``);
command-line flags override it. Faults are :class:`FaultSpec` values, written in a profile as mappings or
on the command line in the short form parsed by :func:`parse_fault`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flux_batch import defaults
from flux_batch.durations import parse_duration
from flux_batch.errors import UsageError
from flux_batch.models.catalog import ModelSpec, check_schema, spec_from_schema
from flux_batch.models.schema_import import as_model_schema

#: Fault kinds, with the endpoints each applies to unless the spec says otherwise (see ``docs/simulator.md``).
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "create_5xx": ("create",),  # a 5xx on create before anything is created: safe to retry
    "ambiguous_create": ("create",),  # the prediction IS created, then a 5xx or a dropped connection
    "html_5xx": ("any",),  # 500/502/503 with an HTML body, as a proxy or load balancer sends
    "reset": ("any",),  # the connection is dropped before an answer
    "slow": ("any",),  # the answer is held back ``delay`` seconds
    "content_filter": ("create",),  # the prediction fails with the E005 content-filter error
    "latency_spike": ("create",),  # the prediction takes ``factor`` times its usual time
    "truncated_download": ("output",),  # a cut output file with a matching Content-Length
    "wrong_length": ("output",),  # Content-Length says more bytes than are sent
    "flaky_file": ("output",),  # 404 (or ``status``) for an output file not served yet: a CDN catching up
    "unauthorized": ("any",),  # 401 problem+json
    "billing": ("create",),  # 402 problem+json
}
ENDPOINTS = ("create", "get", "list", "cancel", "upload", "file", "model", "output", "stream", "any")
DEFAULT_STATUS = {"create_5xx": 503, "ambiguous_create": 502, "html_5xx": 0, "flaky_file": 404}
DEFAULT_PROXY_MESSAGE = "flux-batch simulator - Replicate"
#: 429 bodies: ``auto`` answers as seen in the wild (``bare`` for the normal limits, ``retry_after`` for a
#: low-credit account); ``problem`` adds a ``title`` and ``retry_after`` to every 429.
RATE_LIMIT_BODIES = ("auto", "bare", "retry_after", "problem")
#: Where a proxy-style list page's ``next`` points: ``upstream`` (api.replicate.com, as a pass-through
#: proxy answers) or ``proxy`` (the proxy itself, so that following ``next`` keeps the token there).
PROXY_NEXT = ("upstream", "proxy")


@dataclass(frozen=True)
class FaultSpec:
    """One fault and when it fires.

    A fault is counted on each request it applies to (``on``); its n-th such request (1-based) fires when
    every schedule given holds: ``after`` (n >= after), ``requests`` (lo <= n <= hi), ``every`` (n divisible
    by it) and ``probability`` (a seeded draw). With no schedule at all it fires every time.
    """

    kind: str
    probability: float | None = None
    every: int | None = None
    requests: tuple[int, int] | None = None
    after: int | None = None
    on: tuple[str, ...] = ()
    status: int | None = None  # create_5xx, ambiguous_create, html_5xx (0: pick 500/502/503), flaky_file
    mode: str = "5xx"  # ambiguous_create: "5xx" or "drop"
    delay: float = 2.0  # slow: seconds
    factor: float = 10.0  # latency_spike: multiplier

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise UsageError(f"unknown fault kind {self.kind!r}; choose from {', '.join(FAULT_KINDS)}")
        if not self.on:
            object.__setattr__(self, "on", FAULT_KINDS[self.kind])
        bad = [e for e in self.on if e not in ENDPOINTS]
        if bad:
            raise UsageError(
                f"fault {self.kind}: unknown endpoint {bad[0]!r}; choose from {', '.join(ENDPOINTS)}"
            )
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise UsageError(
                f"fault {self.kind}: probability must be between 0 and 1, not {self.probability}"
            )
        if self.every is not None and self.every < 1:
            raise UsageError(f"fault {self.kind}: every must be at least 1, not {self.every}")
        if self.mode not in ("5xx", "drop"):
            raise UsageError(f"fault {self.kind}: mode must be '5xx' or 'drop', not {self.mode!r}")
        if self.status is None:
            object.__setattr__(self, "status", DEFAULT_STATUS.get(self.kind))

    def applies_to(self, endpoint: str) -> bool:
        if endpoint in self.on:
            return True
        return "any" in self.on and endpoint != "output"


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulator's behaviour. The defaults mimic the real API's limits."""

    latency: float = 2.0  # mean seconds from create to done (gamma-distributed around it)
    #: True: a model's mean is its typical time (``x-typical-seconds``, as ``plan`` counts it); ``latency``
    #: for a model that states none
    typical_latency: bool = False
    create_rpm: int = defaults.CREATE_RPM  # 0: no limit
    other_rpm: int = defaults.OTHER_RPM  # 0: no limit
    burst: int = (
        defaults.BURST
    )  # create bucket size; the other bucket gets the same seconds of burst unless other_burst
    other_burst: int | None = None
    retention: float = 3600.0  # seconds outputs live after completion
    token: str | None = None  # None: any non-empty bearer token
    retry_after_header: bool = True
    rate_limit_body: str = "auto"  # one of RATE_LIMIT_BODIES
    low_credit: bool = False  # creates cut to 6 per minute with a burst of 1
    seed: int = 0
    faults: tuple[FaultSpec, ...] = ()
    list_supported: bool = True  # False: GET /predictions answers 404, as some proxies do
    files_base_url: str | None = None  # absolute base of output file URLs; default: the request's own
    proxy_message: str = DEFAULT_PROXY_MESSAGE  # the extra ``message`` field of proxy-style responses
    proxy_next: str = "upstream"  # one of PROXY_NEXT
    max_wait: float = defaults.MAX_WAIT_S  # the longest ``Prefer: wait`` honoured
    models: tuple[ModelSpec, ...] = ()  # more models to simulate (a profile names their schema files)

    def __post_init__(self) -> None:
        for name in ("latency", "create_rpm", "other_rpm", "retention"):
            if getattr(self, name) < 0:
                raise UsageError(f"simulator {name} must be >= 0, not {getattr(self, name)}")
        if self.burst < 1 or (self.other_burst is not None and self.other_burst < 1):
            raise UsageError("simulator burst must be at least 1")
        if self.token == "":
            raise UsageError("simulator token must not be empty (leave it unset to accept any token)")
        if self.rate_limit_body not in RATE_LIMIT_BODIES:
            raise UsageError(
                f"simulator rate_limit_body must be one of {', '.join(RATE_LIMIT_BODIES)}, "
                f"not {self.rate_limit_body!r}"
            )
        if self.proxy_next not in PROXY_NEXT:
            raise UsageError(
                f"simulator proxy_next must be one of {', '.join(PROXY_NEXT)}, not {self.proxy_next!r}"
            )

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(SimConfig)}
_FAULT_FIELDS = {f.name for f in dataclasses.fields(FaultSpec)}


def fault_from_mapping(data: Mapping[str, Any]) -> FaultSpec:
    """A :class:`FaultSpec` from a profile entry such as ``{kind: html_5xx, every: 50, status: 502}``."""
    unknown = sorted(set(data) - _FAULT_FIELDS)
    if unknown:
        raise UsageError(f"fault {data.get('kind', '?')}: unknown key {unknown[0]!r}")
    values = dict(data)
    if "requests" in values:
        values["requests"] = _range(values["requests"])
    if isinstance(values.get("on"), str):
        values["on"] = (values["on"],)
    if "on" in values:
        values["on"] = tuple(values["on"])
    try:
        return FaultSpec(**values)
    except TypeError as exc:
        raise UsageError(f"fault entry {dict(data)!r} needs a kind") from exc


def _range(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        lo, _, hi = value.partition("-")
        value = (lo, hi or lo)
    try:
        lo_i, hi_i = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"fault requests must be a range like 10-20, not {value!r}") from exc
    return (lo_i, hi_i)


def parse_fault(text: str) -> FaultSpec:
    """The command-line form ``KIND[:SCHEDULE][:key=value,...]``.

    SCHEDULE is a probability (``0.1``), ``every=N``, ``from=N`` or a request range (``10-20``); the
    options are FaultSpec fields, e.g. ``ambiguous_create:every=10:mode=drop`` or ``slow:0.2:delay=5``.
    """
    kind, *parts = text.split(":")
    values: dict[str, Any] = {"kind": kind.strip()}
    for part in parts:
        for item in (p.strip() for p in part.split(",")):
            if not item:
                continue
            key, eq, val = item.partition("=")
            if not eq:
                if re.fullmatch(r"\d+-\d+", key):
                    values["requests"] = key
                else:
                    values["probability"] = _number(kind, "probability", key)
                continue
            key = {"from": "after"}.get(key, key)
            if key in ("every", "after", "status"):
                values[key] = int(_number(kind, key, val))
            elif key in ("probability", "delay", "factor"):
                values[key] = _number(kind, key, val)
            elif key == "on":
                values["on"] = tuple(val.split("+"))
            else:
                values[key] = val
    return fault_from_mapping(values)


def _number(kind: str, key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise UsageError(f"fault {kind}: {key} must be a number, not {text!r}") from exc


def model_specs(written: Any, folder: Path) -> tuple[ModelSpec, ...]:
    """A profile's ``models: {owner/name: schema file}`` (paths relative to the profile's folder)."""
    if not isinstance(written, Mapping):
        raise UsageError("simulator profile: models must map owner/name to a schema file")
    specs = []
    for name, path in written.items():
        try:
            document = json.loads((folder / str(path)).read_text(encoding="utf-8"))
            schema = as_model_schema(document, str(name))
            check_schema(schema)
        except OSError as exc:
            raise UsageError(f"simulator profile: models: cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(f"simulator profile: models: {path} is not a model schema: {exc}") from exc
        specs.append(spec_from_schema(schema))
    return tuple(specs)


def config_from_mapping(
    data: Mapping[str, Any], base: SimConfig | None = None, folder: Path = Path(".")
) -> SimConfig:
    """Apply a profile's mapping over ``base`` (default :class:`SimConfig`'s defaults)."""
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UsageError(f"simulator profile: unknown key {unknown[0]!r}; known keys: {', '.join(_FIELDS)}")
    values = dict(data)
    if "models" in values:
        values["models"] = model_specs(values["models"], folder)
    if "faults" in values:
        values["faults"] = tuple(
            f if isinstance(f, FaultSpec) else fault_from_mapping(f) for f in (values["faults"] or ())
        )
    for key in ("latency", "retention"):
        if key in values:
            try:
                values[key] = parse_duration(values[key])
            except ValueError as exc:
                raise UsageError(f"simulator profile: {key}: {exc}") from exc
    return (base or SimConfig()).replace(**values)


def load_profile(path: str | Path, base: SimConfig | None = None) -> SimConfig:
    """Read a YAML profile; UsageError if the file is missing or malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UsageError(f"cannot read simulator profile {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"simulator profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise UsageError(f"simulator profile {path} must be a mapping of settings")
    return config_from_mapping(data, base, Path(path).parent)


__all__ = [
    "FAULT_KINDS",
    "FaultSpec",
    "SimConfig",
    "config_from_mapping",
    "fault_from_mapping",
    "load_profile",
    "parse_fault",
]
