"""Prices: what one prediction costs, per image or per megapixel.

FLUX.1 models on Replicate cost a fixed amount per output image. FLUX.2 models are billed by size: a fee
per run, plus an amount per megapixel of every input (reference) image and of the output, and the rate can
depend on an input (flux-2-dev's ``go_fast``). A :class:`Price` is a list of :class:`Rate` s, the first
whose ``when`` matches the input applies. In a model schema it is ``x-price-usd-per-image`` (a number) or
``x-price`` (a rate, or a list of rates with ``when``); in a manifest, ``prices: {owner/name: 0.01}`` or
``prices: {owner/name: {per_run: ..., per_input_mp: ..., per_output_mp: ...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RATE_KEYS = ("per_image", "per_run", "per_input_mp", "per_output_mp")


@dataclass(frozen=True)
class Rate:
    """One line of a price. ``when``: the input values it applies to (empty: any input)."""

    per_image: float = 0.0
    per_run: float = 0.0
    per_input_mp: float = 0.0
    per_output_mp: float = 0.0
    when: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, input: Mapping[str, Any]) -> bool:
        return all(input.get(k) == v for k, v in self.when.items())

    def describe(self) -> str:
        parts = []
        for key, label in (
            ("per_image", "per image"),
            ("per_run", "per run"),
            ("per_input_mp", "per input MP"),
            ("per_output_mp", "per output MP"),
        ):
            value = getattr(self, key)
            if value:
                parts.append(f"${value:g} {label}")
        text = " + ".join(parts) or "free"
        if self.when:
            text += " when " + ", ".join(f"{k}={v!r}" for k, v in self.when.items())
        return text


@dataclass(frozen=True)
class Price:
    """A model's price: the first rate that applies to an input."""

    rates: tuple[Rate, ...]

    @property
    def by_size(self) -> bool:
        """True when the cost depends on megapixels (and so on the size an input asks for)."""
        return any(r.per_input_mp or r.per_output_mp for r in self.rates)

    def rate(self, input: Mapping[str, Any]) -> Rate:
        return next((r for r in self.rates if r.applies(input)), self.rates[-1])

    def cost(
        self,
        input: Mapping[str, Any],
        *,
        images: int = 1,
        output_mp: float = 1.0,
        input_mp: Sequence[float] = (),
    ) -> float:
        """One prediction's cost: ``images`` outputs of ``output_mp`` megapixels each, from input images of
        ``input_mp`` megapixels."""
        rate = self.rate(input)
        return (
            rate.per_run
            + images * (rate.per_image + rate.per_output_mp * output_mp)
            + rate.per_input_mp * sum(input_mp)
        )

    def billed(self, input: Mapping[str, Any], *, images: int, input_mp: float, output_mp: float) -> float:
        """What one prediction was billed, from the megapixels the API says it counted (its ``metrics``:
        ``image_input_megapixel_count``, ``image_output_megapixel_count``, both totals)."""
        rate = self.rate(input)
        return (
            rate.per_run
            + images * rate.per_image
            + rate.per_input_mp * input_mp
            + rate.per_output_mp * output_mp
        )

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self.rates)


def per_image(usd: float) -> Price:
    return Price((Rate(per_image=usd),))


def parse_price(value: Any) -> Price | None:
    """A price from a schema's ``x-price`` / a manifest's ``prices`` entry: a number (per image), a
    mapping of rates, or a list of them. None for anything else (the schemas refuse it first)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return per_image(float(value))
    entries = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else None
    if not entries or not all(isinstance(e, Mapping) for e in entries):
        return None
    rates = tuple(
        Rate(**{k: float(e[k]) for k in RATE_KEYS if k in e}, when=dict(e.get("when", {}))) for e in entries
    )
    return Price(rates)


def schema_price(schema: Mapping[str, Any]) -> Price | None:
    """The price a model schema states, if any."""
    if "x-price" in schema:
        return parse_price(schema["x-price"])
    if "x-price-usd-per-image" in schema:
        return parse_price(schema["x-price-usd-per-image"])
    return None
