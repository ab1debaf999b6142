"""Prompt templates: names, rendering, escapes, and malformed placeholders."""

from __future__ import annotations

import pytest

from flux_batch.manifest.template import TemplateError, compile_template, format_value


def test_names_in_order_of_first_use() -> None:
    assert compile_template("{b} and {a} and {b}").names == ("b", "a")


def test_render_with_escapes_and_values() -> None:
    template = compile_template("a {color} cake {{not a var}} x{n}, raw={raw}")
    assert template.render({"color": "red", "n": 3.0, "raw": True}) == "a red cake {not a var} x3, raw=true"


def test_plain_text_renders_as_is() -> None:
    assert compile_template("no vars").render({}) == "no vars"


@pytest.mark.parametrize("text", ["a {", "a }", "{}", "{x.y}", "{x:3}", "{x!r}", "{0}"])
def test_malformed_placeholders(text: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(text)


def test_format_value() -> None:
    assert [format_value(v) for v in (False, 2.0, 2.5, "s", 7)] == ["false", "2", "2.5", "s", "7"]
