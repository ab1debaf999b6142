"""Reads a YAML file into plain JSON-like data plus the line and column of every key and value.

PyYAML parses; this module adds what a manifest needs on top:

- every problem becomes a located :class:`~flux_batch.errors.Issue` (non-UTF-8 bytes, tabs used for
  indentation, malformed YAML, duplicate keys, an empty or non-mapping document, alias bombs);
- YAML 1.2 scalars: ``16:9`` stays a string (YAML 1.1 reads it as the base-60 number 969), ``yes``, ``no``,
  ``on`` and ``off`` stay strings, dates stay strings, so the data is always JSON-able;
- duplicate keys are rejected (PyYAML silently keeps the last one);
- a NUL character anywhere, a number that is not finite (``.inf``, ``.nan``: JSON has neither), and a
  document nested deeper than :data:`MAX_DEPTH` are refused where they are written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flux_batch.errors import Issue, ManifestError

JsonPath = tuple[Any, ...]

#: Above this many values after alias expansion (and 10 times the written size) a document is refused.
MAX_EXPANDED_NODES = 1_000_000
#: Deeper nesting is refused (a manifest needs about 8 levels); PyYAML would otherwise recurse until
#: Python's stack runs out, with no line to show.
MAX_DEPTH = 64


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (no sexagesimal, yes/no, or timestamps), composing
    at most :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:merge", r"^<<$", "<"),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # YAML 1.2: 010 is ten (not octal eight); 0o17, 0x1f and 0b101 keep their bases.
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    bases = {"0o": 8, "0x": 16, "0b": 2}
    if digits[:2] in bases:
        return sign * int(digits[2:], bases[digits[:2]])
    return sign * int(digits, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: ``data`` and where each value (and each mapping key) was written."""

    file: str
    data: Any
    values: dict[JsonPath, tuple[int, int]] = field(default_factory=dict, repr=False)
    keys: dict[JsonPath, tuple[int, int]] = field(default_factory=dict, repr=False)

    def where(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """``(line, column)`` of the value (or with ``key=True`` the key) at ``path``, or of a parent."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def issue(
        self, path: JsonPath, message: str, hint: str = "", *, key: bool = False, severity: str = "error"
    ) -> Issue:
        """A located issue for the value (or key) at ``path``."""
        line, column = self.where(path, key=key)
        return Issue(self.file, line, column, render_path(path), message, hint, severity)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def render_path(path: JsonPath) -> str:
    """``("stages", 0, "matrix", "color")`` -> ``stages[0].matrix.color`` (``$`` for the root)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text or "$"


def load_yaml(path: str | Path, *, display_name: str | None = None) -> Document:
    """Read and parse ``path``; raise :class:`ManifestError` with every problem found."""
    name = display_name or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError([Issue(name, 0, 0, "$", f"cannot read the file: {exc.strerror or exc}")]) from exc
    return parse_yaml(raw, name)


def parse_yaml(raw: bytes, name: str) -> Document:
    """Parse YAML bytes named ``name`` (used in messages) into a :class:`Document`."""
    text = _decode(raw, name)
    tabs = list(_indentation_tabs(text, name))
    if tabs:
        raise ManifestError(tabs)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except _TooDeep as exc:
        raise _refused(
            name,
            exc.mark,
            f"the document is nested deeper than {MAX_DEPTH} levels here",
            "a manifest needs a few levels: look for unclosed or repeated brackets",
        ) from exc
    except yaml.reader.ReaderError as exc:
        raise ManifestError([_character_issue(exc, text, name)]) from exc
    except yaml.MarkedYAMLError as exc:
        raise ManifestError([_yaml_issue(exc, name)]) from exc
    except yaml.YAMLError as exc:
        raise ManifestError([Issue(name, 0, 0, "$", f"invalid YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise ManifestError([Issue(name, 0, 0, "$", "the document is nested too deeply")]) from exc
    if root is None:
        raise ManifestError(
            [
                Issue(
                    name,
                    1,
                    1,
                    "$",
                    "the file is empty",
                    "start from pipelines/quickstart.yaml or docs/manifest.md",
                )
            ]
        )
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise _refused(
            name,
            root.start_mark,
            f"the document is {kind}, not a mapping",
            "a manifest starts with 'version: 1'",
        )
    builder = _Builder(name)
    try:
        builder.check_size(root)
        data = builder.build(root, ())
    except RecursionError as exc:
        raise ManifestError([Issue(name, 0, 0, "$", "the document is nested too deeply")]) from exc
    if builder.issues:
        raise ManifestError(builder.issues)
    return Document(name, data, builder.values, builder.keys)


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise ManifestError(
            [
                Issue(
                    name, line, column, "$", f"the file is not UTF-8 text (byte 0x{byte})", "save it as UTF-8"
                )
            ]
        ) from exc


def _refused(name: str, mark: yaml.Mark, message: str, hint: str) -> ManifestError:
    """The whole document refused, at ``mark``."""
    return ManifestError([Issue(name, mark.line + 1, mark.column + 1, "$", message, hint)])


def _character_issue(exc: yaml.reader.ReaderError, text: str, name: str) -> Issue:
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\x00")
    what = "a NUL character" if code == 0 else "a control character"
    return Issue(
        name,
        line,
        column,
        "$",
        f"the file contains {what} (code {code})",
        "a manifest is plain text: remove it",
    )


def _indentation_tabs(text: str, name: str) -> Iterator[Issue]:
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip():
            yield Issue(
                name,
                number,
                indent.index("\t") + 1,
                "$",
                "a tab character in the indentation",
                "YAML indents with spaces only; replace the tab with spaces",
            )


def _yaml_issue(exc: yaml.MarkedYAMLError, name: str) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = exc.problem or "malformed YAML"
    if exc.context:
        problem = f"{problem} ({exc.context})"
    hint = ""
    if "expected a single document" in str(exc):
        problem, hint = "more than one YAML document ('---')", "keep one manifest per file"
    elif "could not determine a constructor" in problem:
        hint = "only plain YAML is allowed: remove the '!' tag"
    elif "mapping values are not allowed" in problem:
        hint = "quote a value that contains ': ' (for example a prompt)"
    elif "found character" in problem and "cannot start any token" in problem:
        hint = "quote the value"
    return Issue(name, line, column, "$", f"invalid YAML: {problem}", hint)


_NUL_MESSAGE = "a NUL character (\\0) in the text"
_NUL_HINT = "remove it: no name, path or prompt can hold one"


class _Builder:
    """Turns a composed node tree into plain data, recording positions and duplicate keys."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.values: dict[JsonPath, tuple[int, int]] = {}
        self.keys: dict[JsonPath, tuple[int, int]] = {}
        self.issues: list[Issue] = []
        self.constructor = _Loader("")

    def check_size(self, root: yaml.Node) -> None:
        """Refuse documents whose aliases expand far beyond their written size (a "billion laughs")."""
        sizes: dict[int, int] = {}
        distinct = 0

        def size(node: yaml.Node) -> int:
            nonlocal distinct
            known = sizes.get(id(node))
            if known is not None:
                return known
            distinct += 1
            sizes[id(node)] = 1  # a recursive alias (&a [*a]) counts once instead of looping
            total = 1
            if isinstance(node, yaml.SequenceNode):
                total += sum(size(child) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                total += sum(size(k) + size(v) for k, v in node.value)
            sizes[id(node)] = total
            return total

        expanded = size(root)
        if expanded > MAX_EXPANDED_NODES and expanded > 10 * distinct:
            mark = root.start_mark
            raise ManifestError(
                [
                    Issue(
                        self.name,
                        mark.line + 1,
                        mark.column + 1,
                        "$",
                        f"YAML aliases expand to {expanded:,} values from {distinct:,} (an alias bomb?)",
                        "write the values out, or use fewer nested aliases",
                    )
                ]
            )

    def build(self, node: yaml.Node, path: JsonPath, active: frozenset[int] = frozenset()) -> Any:
        self.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if id(node) in active:
            self._error(node, path, "a YAML alias refers to itself", "remove the recursive alias")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        inner = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i), inner) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        return self._mapping(node, path, inner)

    def _mapping(self, node: yaml.MappingNode, path: JsonPath, active: frozenset[int]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._merge(value_node, path, result, active)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._error(key_node, path, "a mapping key must be a plain string", "quote the key")
                continue
            key = str(key_node.value)
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if "\x00" in key:
                self._error(key_node, path, _NUL_MESSAGE, _NUL_HINT)
                continue
            if key in seen:
                line = seen[key][0]
                self.issues.append(
                    Issue(
                        self.name,
                        where[0],
                        where[1],
                        render_path((*path, key)),
                        f"duplicate key {key!r} (first given on line {line})",
                        "YAML keeps only one of them: remove or rename one",
                    )
                )
                continue
            seen[key] = where
            child = (*path, key)
            self.keys[child] = where
            result[key] = self.build(value_node, child, active)
        return result

    def _merge(self, node: yaml.Node, path: JsonPath, into: dict[str, Any], active: frozenset[int]) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._error(
                    source, path, "'<<' merges only mappings", "merge an alias of a mapping: <<: *name"
                )
                continue
            for key, value in self._mapping(source, path, active).items():
                into.setdefault(key, value)

    def _scalar(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self._error(node, path, f"invalid value: {problem}")
            return None
        if isinstance(value, (bytes, bytearray)) or not isinstance(
            value, (str, int, float, bool, type(None))
        ):
            value = str(node.value)
        if isinstance(value, str) and "\x00" in value:
            self._error(node, path, _NUL_MESSAGE, _NUL_HINT)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._error(
                node,
                path,
                f"{node.value} is not a finite number",
                "JSON and the API have no infinity or NaN: write a number",
            )
            return None
        return value

    def _error(self, node: yaml.Node, path: JsonPath, message: str, hint: str = "") -> None:
        mark = node.start_mark
        self.issues.append(Issue(self.name, mark.line + 1, mark.column + 1, render_path(path), message, hint))
