"""The known FLUX models: input schemas, prices, output shapes; and input validation.

The data lives in ``schemas/models/*.json`` (one JSON Schema per model, with ``x-`` keys for the price
(:mod:`flux_batch.models.pricing`), the output shape and which inputs take images). Models fetched with
``flux-batch models --fetch`` are read from the user's cache (:mod:`flux_batch.models.cache`) after those.
Both the manifest checks and the simulator's 422 answers come from :func:`check_input`, so they can never
disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from flux_batch import resources
from flux_batch.jobs.ids import canonical_json
from flux_batch.models import sizes
from flux_batch.models.pricing import Price, parse_price, schema_price

MODEL_REF = re.compile(
    r"^(?P<owner>[a-z0-9][a-z0-9_.-]*)/(?P<name>[a-z0-9][a-z0-9_.-]*)(?::(?P<version>[0-9a-f]{64}))?$"
)
VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
#: The inputs that take the image(s) a model edits or follows (FLUX.1 Kontext: one; FLUX.2: a list). With
#: a model axis, a stage's reference images go to each model's own one of these (:func:`reference_input`).
REFERENCE_INPUTS = ("input_image", "input_images", "images")
#: The prediction time estimates count a model at when its schema states none (a fetched model, say).
UNKNOWN_TYPICAL_S = 10.0
#: Stands in for an image that only exists at run time (an upstream output, a local file) when checking.
PLACEHOLDER_URL = "https://flux-batch.invalid/placeholder.png"


@dataclass(frozen=True)
class ModelSpec:
    """What flux-batch knows of one model. ``schema`` is None for models it does not know."""

    name: str
    title: str
    price: Price | None
    output: str  # "url": one URL string; "list": a list of URLs
    image_inputs: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = field(default=None, repr=False)
    #: Seconds from create to output with the default input (``x-typical-seconds``); None: not known.
    typical_s: float | None = None

    @property
    def hold_s(self) -> float:
        """The time a job of this model is counted at in estimates: its typical time, or
        :data:`UNKNOWN_TYPICAL_S` when that is not known."""
        return UNKNOWN_TYPICAL_S if self.typical_s is None else self.typical_s

    @property
    def known(self) -> bool:
        return self.schema is not None

    @property
    def list_image_inputs(self) -> tuple[str, ...]:
        """The image inputs that take a list of images (``input_images``)."""
        return tuple(n for n in self.image_inputs if self.inputs.get(n, {}).get("type") == "array")

    @property
    def reference_input(self) -> str | None:
        """The model's one input of :data:`REFERENCE_INPUTS` (None: it has none, or several)."""
        names = [n for n in REFERENCE_INPUTS if n in self.inputs and n in self.image_inputs]
        return names[0] if len(names) == 1 else None

    @property
    def price_usd(self) -> float | None:
        """The cost of one prediction with the default inputs (None when the price is unknown)."""
        return None if self.price is None else self.cost(self.defaults)

    def cost(self, input: Mapping[str, Any], input_mp: list[float] | None = None) -> float | None:
        """The estimated cost of one prediction with ``input``: by image, or by the megapixels of its
        output and, where billed, of its input images (``input_mp``; by default 1 MP for each image
        given). None when the price is unknown."""
        if self.price is None:
            return None
        values = {**self.defaults, **input}
        if input_mp is None:
            input_mp = [1.0] * sum(_image_count(values.get(n)) for n in self.image_inputs)
        return self.price.cost(
            values,
            images=self.images_per_prediction(input),
            output_mp=sizes.billed_output_megapixels(values),
            input_mp=input_mp,
        )

    @property
    def inputs(self) -> Mapping[str, Mapping[str, Any]]:
        return (self.schema or {}).get("properties", {})

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.inputs.items() if "default" in v}

    def images_per_prediction(self, input: Mapping[str, Any]) -> int:
        """How many images (and so how many billed units) one prediction with this input makes."""
        if "num_outputs" in self.inputs:
            n = input.get("num_outputs", self.defaults.get("num_outputs", 1))
            if isinstance(n, (int, float)) and not isinstance(n, bool) and float(n).is_integer() and n >= 1:
                return int(n)
            return 1  # not a count: check_input reports it (the count must not crash before that)
        return 1


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with a model input: ``path`` is the JSON path below ``input``."""

    path: str
    message: str
    hint: str = ""
    severity: str = "error"


def _image_count(value: Any) -> int:
    if value is None or value == "":
        return 0
    return len(value) if isinstance(value, list) else 1


def spec_from_schema(schema: Mapping[str, Any]) -> ModelSpec:
    """The spec a model schema (flux-batch's form, with ``x-model``) describes."""
    return ModelSpec(
        name=schema["x-model"],
        title=schema.get("title", schema["x-model"]),
        price=schema_price(schema),
        output=schema.get("x-output", "url"),
        image_inputs=tuple(schema.get("x-image-inputs", ())),
        schema=schema,
        typical_s=_seconds(schema.get("x-typical-seconds")),
    )


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


@functools.lru_cache(maxsize=1)
def known_models() -> dict[str, ModelSpec]:
    """Every model with a schema under ``schemas/models/``, by ``owner/name``."""
    specs: dict[str, ModelSpec] = {}
    for path in sorted((resources.schemas_dir() / "models").glob("*.json")):
        spec = spec_from_schema(resources.load_schema(f"models/{path.name}"))
        specs[spec.name] = spec
    return specs


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"owner/name[:version]"`` -> ``("owner/name", version or None)``; ValueError if malformed."""
    match = MODEL_REF.match(ref)
    if not match:
        raise ValueError(f"{ref!r} is not a model reference of the form owner/name or owner/name:<64 hex>")
    return f"{match['owner']}/{match['name']}", match["version"]


def get_model(
    name: str, price_override: Any = None, extra: Mapping[str, ModelSpec] | None = None
) -> ModelSpec:
    """The spec for ``owner/name``: from ``extra`` (a manifest's schema files), the built-in schemas, or
    the cache of fetched schemas; else an unchecked spec. ``price_override`` is a manifest's ``prices``
    entry (a number per image, or rates)."""
    from flux_batch.models import cache

    spec = (extra or {}).get(name) or known_models().get(name) or cache.cached_spec(name)
    price = parse_price(price_override) if price_override is not None else None
    if spec is None:
        return ModelSpec(name=name, title=name, price=price, output="any")
    if price is not None:
        return dataclasses.replace(spec, price=price)
    return spec


def closest(word: str, choices: list[str] | tuple[str, ...] | Any) -> str | None:
    """The choice ``word`` is most likely a misspelling of, or None."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, choices: list[str] | tuple[str, ...] | Any) -> str:
    """A did-you-mean hint (``"did you mean 'guidance'?"``) or ``""``."""
    close = closest(word, choices)
    return f"did you mean {close!r}?" if close else ""


def _with_placeholders(spec: ModelSpec, input: Mapping[str, Any]) -> dict[str, Any]:
    """Image references that resolve only at run time (mappings, also in a list) are checked as a URL."""

    def placeholder(value: Any) -> Any:
        return PLACEHOLDER_URL if isinstance(value, Mapping) else value

    return {
        k: ([placeholder(x) for x in v] if isinstance(v, list) else placeholder(v))
        if k in spec.image_inputs
        else v
        for k, v in input.items()
    }


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}


def _validator(spec: ModelSpec) -> jsonschema.protocols.Validator:
    key = canonical_json(spec.schema)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(spec.schema)
        validator = _VALIDATORS[key] = cls(spec.schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def check_input(spec: ModelSpec, input: Mapping[str, Any]) -> list[InputProblem]:
    """Every problem with one resolved model input, cross-field rules included. Empty means valid.

    Unknown models pass unchecked (the manifest layer warns once per stage).
    """
    if not spec.known:
        return []
    value = _with_placeholders(spec, input)
    problems: list[InputProblem] = []
    for error in sorted(_validator(spec).iter_errors(value), key=lambda e: list(e.absolute_path)):
        problems.extend(_describe(spec, error))
    ratio = value.get("aspect_ratio", spec.defaults.get("aspect_ratio"))
    if "custom" in spec.inputs.get("aspect_ratio", {}).get("enum", ()) and ratio != "custom":
        for key in ("width", "height"):
            if key in value:
                problems.append(
                    InputProblem(
                        key,
                        f"{key} is ignored unless aspect_ratio is 'custom' (it is {ratio!r})",
                        "set aspect_ratio: custom to choose the size, or drop width and height",
                        severity="warning",
                    )
                )
    return problems


def _describe(spec: ModelSpec, error: jsonschema.ValidationError) -> list[InputProblem]:
    if error.validator == "additionalProperties":  # one error for all unknown names: one problem each
        unknown = sorted(set(error.instance) - set(spec.inputs)) or ["?"]
        return [
            InputProblem(
                name,
                f"{spec.name} has no input {name!r}",
                suggest(name, spec.inputs) or f"{spec.name} takes: {', '.join(sorted(spec.inputs))}",
            )
            for name in unknown
        ]
    return [_describe_one(spec, error)]


def _describe_one(spec: ModelSpec, error: jsonschema.ValidationError) -> InputProblem:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        if missing in ("width", "height"):
            return InputProblem(missing, f"aspect_ratio 'custom' needs {missing}", "set width and height")
        return InputProblem(missing, f"{spec.name} needs the input {missing!r}")
    if error.validator == "multipleOf":
        near = round(error.instance / error.validator_value) * error.validator_value
        return InputProblem(
            path, f"{error.instance} is not a multiple of {error.validator_value}", f"try {near}"
        )
    if error.validator == "enum":
        hint = suggest(error.instance, [str(v) for v in error.validator_value])
        choices = ", ".join(repr(v) for v in error.validator_value)
        return InputProblem(path, f"{error.instance!r} is not one of {choices}", hint)
    if error.validator == "maximum" and path == "safety_tolerance" and "input_image" in spec.inputs:
        return InputProblem(
            path, f"safety_tolerance must be at most 2 with an input image, not {error.instance}"
        )
    if error.validator in ("minimum", "maximum"):
        low, high = spec.inputs.get(path, {}).get("minimum"), spec.inputs.get(path, {}).get("maximum")
        return InputProblem(path, f"{error.instance} is out of range (allowed {low} to {high})")
    return InputProblem(path, error.message)


def near_miss(name: str, known: Any) -> str | None:
    """The known model ``name`` is a typo of, or None: the same owner/name but for one character (left out,
    added, changed, or two swapped), except a digit changed for another digit (``klein-4b`` and
    ``klein-9b`` are two models, not a typo)."""
    for other in known:
        if other != name and _one_edit(name, other):
            return str(other)
    return None


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return not (a[diff[0]].isdigit() and b[diff[0]].isdigit())
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1 :]


def check_schema(schema: Mapping[str, Any]) -> None:
    """ValueError unless ``schema`` is a JSON Schema flux-batch can check inputs with."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
    if not isinstance(schema.get("properties"), Mapping):
        raise ValueError("it has no properties")
