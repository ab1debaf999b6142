"""YAML loading: positions, YAML 1.2 scalars, and every malformed-input case as a located issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_batch.errors import ManifestError
from flux_batch.manifest.yaml_loader import Document, load_yaml, parse_yaml, render_path


def issues_of(text: bytes) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_yaml(text, "m.yaml")
    return [i.render() for i in info.value.issues]


def test_positions_of_values_and_keys() -> None:
    doc = parse_yaml(b"a:\n  b: [1, 2]\n  c: x\n", "m.yaml")
    assert doc.data == {"a": {"b": [1, 2], "c": "x"}}
    assert doc.where(("a", "b", 1)) == (2, 10)
    assert doc.where(("a", "c"), key=True) == (3, 3)
    assert doc.where(("a", "c")) == (3, 6)
    assert doc.where(("a", "missing", 4)) == (2, 3)  # the nearest known parent


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16:9", "16:9"),  # YAML 1.1 would read 969
        ("yes", "yes"),
        ("off", "off"),
        ("2024-01-01", "2024-01-01"),
        ("010", 10),
        ("0o17", 15),
        ("0x1f", 31),
        ("1_000", 1000),
        ("1e3", 1000.0),
        ("2.5", 2.5),
        ("true", True),
        ("~", None),
        ("'3'", "3"),
    ],
)
def test_yaml_1_2_scalars(text: str, value: object) -> None:
    assert parse_yaml(f"v: {text}\n".encode(), "m.yaml").data["v"] == value


def test_duplicate_keys_rejected_with_both_lines() -> None:
    assert issues_of(b"a: 1\nb:\n  c: 1\n  c: 2\n") == [
        "m.yaml:4:3: b.c: duplicate key 'c' (first given on line 3)"
        " (hint: YAML keeps only one of them: remove or rename one)"
    ]


def test_merge_keys_are_not_duplicates_and_own_keys_win() -> None:
    doc = parse_yaml(b"base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "m.yaml")
    assert doc.data["other"] == {"x": 1, "y": 3}


def test_tabs_in_indentation_each_reported() -> None:
    rendered = issues_of(b"a:\n\tb: 1\n\tc: 2\nd: 'tab\tinside is fine'\n")
    assert [r.split(": $")[0] for r in rendered] == ["m.yaml:2:1", "m.yaml:3:1"]


def test_non_utf8_located_at_the_byte() -> None:
    assert issues_of(b"a: 1\nname: caf\xe9\n")[0].startswith(
        "m.yaml:2:10: $: the file is not UTF-8 text (byte 0xe9)"
    )


def test_utf8_bom_accepted() -> None:
    assert parse_yaml(b"\xef\xbb\xbfa: 1\n", "m.yaml").data == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"- a\n- b\n", "the document is a list, not a mapping"),
        (b"just text\n", "the document is a single value, not a mapping"),
        (b"a: 1\n---\nb: 2\n", "more than one YAML document"),
        (b"a: [1, 2\n", "invalid YAML"),
        (b"a: !!python/object:os.system x\n", "could not determine a constructor"),
        (b"a: &x [*x]\n", "a YAML alias refers to itself"),
        (b"[1]: x\n", "a mapping key must be a plain string"),
    ],
)
def test_malformed_documents(text: bytes, message: str) -> None:
    assert any(message in r for r in issues_of(text))


def test_alias_bomb_refused_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    rendered = issues_of("\n".join(lines).encode())
    assert "YAML aliases expand to" in rendered[0] and "an alias bomb?" in rendered[0]


def test_modest_aliases_allowed() -> None:
    doc = parse_yaml(b"s: &s {guidance: 3}\na: *s\nb: *s\n", "m.yaml")
    assert doc.data["a"] == doc.data["b"] == {"guidance": 3}


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_yaml(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_render_path() -> None:
    assert render_path(()) == "$"
    assert render_path(("stages", 0, "matrix", "color")) == "stages[0].matrix.color"
    assert render_path(("prices", "a/b")) == "prices['a/b']"


def test_document_issue_renders_location() -> None:
    doc = Document("m.yaml", {"a": 1}, {("a",): (1, 4)}, {("a",): (1, 1)})
    assert doc.issue(("a",), "bad", "fix it").render() == "m.yaml:1:4: a: bad (hint: fix it)"
    assert doc.issue(("a",), "odd", key=True, severity="warning").render() == "m.yaml:1:1: warning: a: odd"
