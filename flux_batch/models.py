"""The known FLUX models: input schemas, prices, output shapes; and input validation.

The data lives in ``schemas/models/*.json`` (one JSON Schema per model, with ``x-`` keys for the price
per image, the output shape and which inputs take images). Both the manifest checks and the simulator's
422 answers come from :func:`check_input`, so they can never disagree.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from flux_batch import resources

MODEL_REF = re.compile(
    r"^(?P<owner>[a-z0-9][a-z0-9_.-]*)/(?P<name>[a-z0-9][a-z0-9_.-]*)(?::(?P<version>[0-9a-f]{64}))?$"
)
VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
#: Stands in for an image that only exists at run time (an upstream output, a local file) when checking.
PLACEHOLDER_URL = "https://flux-batch.invalid/placeholder.png"


@dataclass(frozen=True)
class ModelSpec:
    """What flux-batch knows of one model. ``schema`` is None for models it does not know."""

    name: str
    title: str
    price_usd: float | None
    output: str  # "url": one URL string; "list": a list of URLs
    image_inputs: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def known(self) -> bool:
        return self.schema is not None

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


@functools.lru_cache(maxsize=1)
def known_models() -> dict[str, ModelSpec]:
    """Every model with a schema under ``schemas/models/``, by ``owner/name``."""
    specs: dict[str, ModelSpec] = {}
    for path in sorted((resources.schemas_dir() / "models").glob("*.json")):
        schema = resources.load_schema(f"models/{path.name}")
        specs[schema["x-model"]] = ModelSpec(
            name=schema["x-model"],
            title=schema.get("title", schema["x-model"]),
            price_usd=schema.get("x-price-usd-per-image"),
            output=schema.get("x-output", "url"),
            image_inputs=tuple(schema.get("x-image-inputs", ())),
            schema=schema,
        )
    return specs


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"owner/name[:version]"`` -> ``("owner/name", version or None)``; ValueError if malformed."""
    match = MODEL_REF.match(ref)
    if not match:
        raise ValueError(f"{ref!r} is not a model reference of the form owner/name or owner/name:<64 hex>")
    return f"{match['owner']}/{match['name']}", match["version"]


def get_model(name: str, price_override: float | None = None) -> ModelSpec:
    """The spec for ``owner/name``; an unknown model gets an unchecked spec (price from the manifest)."""
    spec = known_models().get(name)
    if spec is None:
        return ModelSpec(name=name, title=name, price_usd=price_override, output="any")
    if price_override is not None:
        return ModelSpec(spec.name, spec.title, price_override, spec.output, spec.image_inputs, spec.schema)
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
    """Image references that resolve only at run time (mappings) are checked as a URL."""
    return {
        k: PLACEHOLDER_URL if k in spec.image_inputs and isinstance(v, Mapping) else v
        for k, v in input.items()
    }


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = known_models()[name].schema
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check_input(spec: ModelSpec, input: Mapping[str, Any]) -> list[InputProblem]:
    """Every problem with one resolved model input, cross-field rules included. Empty means valid.

    Unknown models pass unchecked (the manifest layer warns once per stage).
    """
    if not spec.known:
        return []
    value = _with_placeholders(spec, input)
    problems: list[InputProblem] = []
    for error in sorted(_validator(spec.name).iter_errors(value), key=lambda e: list(e.absolute_path)):
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
