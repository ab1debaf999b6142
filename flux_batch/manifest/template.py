"""Prompt templates: ``"a {color} {subject}, {style}"`` with ``{{`` and ``}}`` for literal braces.

A template is compiled once (its variable names are known before any job is made, so an unknown name is
an error at load time, not a million failed jobs) and rendered per job with a plain join.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """The template text is malformed (unbalanced braces, a placeholder that is not a plain name)."""


@dataclass(frozen=True)
class Template:
    """A compiled template: literal text and variable names, alternating (``parts[0]`` is text)."""

    text: str
    parts: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The variable names used, in order of first use."""
        return tuple(dict.fromkeys(self.parts[1::2]))

    def render(self, values: Mapping[str, Any]) -> str:
        """The text with every ``{name}`` replaced by ``values[name]`` (booleans as true/false)."""
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = list(parts)
        for i in range(1, len(parts), 2):
            out[i] = format_value(values[parts[i]])
        return "".join(out)


def compile_template(text: str) -> Template:
    """Parse ``text``; raise :class:`TemplateError` with a human message if it is malformed."""
    parts: list[str] = []
    literal = ""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc} (write {{{{ or }}}} for a literal brace)") from exc
    for text_part, field, spec, conversion in parsed:
        literal += text_part
        if field is None:
            continue
        if not _NAME.match(field) or spec or conversion:
            shown = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise TemplateError(
                f"{shown} is not a variable placeholder: write {{name}} with a plain name"
                " (or {{ and }} for literal braces)"
            )
        parts.extend((literal, field))
        literal = ""
    parts.append(literal)
    return Template(text, tuple(parts))


def format_value(value: Any) -> str:
    """How a variable appears in a prompt: booleans as YAML writes them, integral floats without ``.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
