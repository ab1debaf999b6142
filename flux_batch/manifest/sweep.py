"""Sweeps: the combinations of variable values that multiply a stage into jobs.

A sweep is a product of *factors*. A factor is a table: one or more variable names and rows of values
taken together. A matrix axis is a one-column factor, a zip group a factor with one column per variable,
and ``cases`` one factor whose rows may leave some variables out. Then GitHub-Actions-style ``exclude``
drops combinations and ``include`` extends or adds them, and ``repeat`` copies each combination with a
``repeat`` index. Everything is pure and streaming: combinations are generated one at a time, and counted
arithmetically when no include/exclude rule forces a pass.

Reading the files a sweep names (text lines, CSV or JSON Lines rows, globs) lives here too, at the edge.
"""

from __future__ import annotations

import csv
import glob as globlib
import itertools
import json
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REPEAT = "repeat"
#: A sweep with include/exclude rules is counted one combination at a time, up to this many times the
#: job limit; past that it is refused by its size before the rules.
SCAN_FACTOR = 10


class _Missing:
    """A cell with no value: the variable is absent from that combination."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class SweepError(ValueError):
    """A sweep source is unusable. ``file``/``line`` locate it in a data file when known."""

    def __init__(
        self, message: str, *, hint: str = "", file: str = "", line: int = 0, column: int = 0
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Factor:
    """Variables ``names`` taking the values of one of ``rows`` at a time (cells may be MISSING)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    sparse: bool = False  # some cells are MISSING

    def __len__(self) -> int:
        return len(self.rows)


def axis(name: str, values: Sequence[Any]) -> Factor:
    """A product axis: one variable, one row per value."""
    return Factor((name,), tuple((v,) for v in values))


def zipped(columns: Mapping[str, Sequence[Any]]) -> Factor:
    """Variables whose values go together; every column must have the same length."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise SweepError(
            f"zipped variables must have the same number of values: {shown}",
            hint="add or remove values, or move a variable to matrix for every combination",
        )
    return Factor(tuple(columns), tuple(zip(*columns.values(), strict=True)))


def table(rows: Sequence[Mapping[str, Any]]) -> Factor:
    """Explicit cases: each mapping is one row; a variable a row does not give is absent from it."""
    names = tuple(dict.fromkeys(name for row in rows for name in row))
    cells = tuple(tuple(row.get(name, MISSING) for name in names) for row in rows)
    return Factor(names, cells, sparse=any(MISSING in row for row in cells))


@dataclass(frozen=True)
class Sweep:
    """The combinations of one stage: ``factors`` multiplied, then exclude, include and repeat."""

    factors: tuple[Factor, ...] = ()
    include: tuple[Mapping[str, Any], ...] = ()
    exclude: tuple[Mapping[str, Any], ...] = ()
    repeat: int = 1
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [n for f in self.factors for n in f.names]
        names += [n for rule in self.include for n in rule]
        if self.repeat > 1:
            names.append(REPEAT)
        object.__setattr__(self, "names", tuple(dict.fromkeys(names)))

    def combinations(self) -> Iterator[dict[str, Any]]:
        """Every combination, in a deterministic order (the first factor varies slowest)."""
        base = self._ruled() if (self.include or self.exclude) else self._product()
        if self.repeat == 1:
            yield from base
            return
        for combo in base:
            for index in range(self.repeat):
                yield {**combo, REPEAT: index}

    def count(self, limit: int | None = None) -> int:
        """How many combinations; arithmetic unless include/exclude rules apply.

        With rules the combinations are counted one by one, stopping once the count passes ``limit``. At
        most :data:`SCAN_FACTOR` times ``limit`` combinations are looked at (a huge product that exclude
        would drop nearly all of could take hours): past that, its size before the rules is returned,
        which is over the limit.
        """
        product = math.prod(len(f) for f in self.factors) * self.repeat
        if not (self.include or self.exclude):
            return product
        scan = SCAN_FACTOR * limit if limit is not None and self.factors else None
        looked = 0

        def scanned() -> Iterator[dict[str, Any]]:
            nonlocal looked
            for combo in self._product():
                looked += 1
                if scan is not None and looked > scan:
                    return
                yield combo

        total = 0
        for _ in self._ruled(scanned()):
            if scan is not None and looked > scan:
                break
            total += self.repeat
            if limit is not None and total > limit:
                return total
        return product if scan is not None and looked > scan else total

    def _product(self) -> Iterator[dict[str, Any]]:
        if not self.factors:
            yield {}
            return
        names = tuple(n for f in self.factors for n in f.names)
        sparse = any(f.sparse for f in self.factors)
        chain = itertools.chain.from_iterable
        for rows in itertools.product(*(f.rows for f in self.factors)):
            values = chain(rows) if len(rows) > 1 else rows[0]
            if sparse:
                yield {n: v for n, v in zip(names, values, strict=True) if v is not MISSING}
            else:
                yield dict(zip(names, values, strict=True))

    def _ruled(self, product: Iterator[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
        if not self.factors:
            # GitHub Actions: with no matrix, each include entry is a combination of its own.
            for rule in self.include:
                yield dict(rule)
            return
        matched = [False] * len(self.include)
        for combo in self._product() if product is None else product:
            if any(matches(combo, rule) for rule in self.exclude):
                continue
            extra: dict[str, Any] = {}
            for i, rule in enumerate(self.include):
                # an entry extends a combination if it agrees on every variable the combination already has
                if all(combo[k] == v for k, v in rule.items() if k in combo):
                    matched[i] = True
                    extra.update((k, v) for k, v in rule.items() if k not in combo)
            combo.update(extra)
            yield combo
        for i, rule in enumerate(self.include):
            if not matched[i]:
                yield dict(rule)


def matches(values: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    """True when ``values`` has every value of ``rule`` (a list in ``rule`` allows any of its items)."""
    for key, wanted in rule.items():
        value = values.get(key, MISSING)
        if isinstance(wanted, (list, tuple)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def range_count(start: float, stop: float, step: float = 1, inclusive: bool = True) -> int:
    """How many values :func:`number_range` gives, by arithmetic alone (nothing is built).

    Raises :class:`SweepError` for a step of 0, a non-finite bound, or a range with no values.
    """
    first, last, delta = _decimals(start, stop, step)
    if delta == 0:
        raise SweepError("range step must not be 0")
    span = (last - first) / delta
    if span < 0:
        raise SweepError(
            f"range from {start} to {stop} by {step} is empty",
            hint="use a negative step to count down" if delta > 0 else "use a positive step",
        )
    count = int(span) + 1
    if not inclusive and first + (count - 1) * delta == last:
        count -= 1
    if count == 0:
        raise SweepError(f"range from {start} to {stop} (excluded) is empty", hint="set inclusive: true")
    return count


def number_range(start: float, stop: float, step: float = 1, inclusive: bool = True) -> list[int | float]:
    """``start, start + step, ...`` up to ``stop`` (included when landed on, unless ``inclusive`` is false).

    Decimal arithmetic keeps ``0.1`` steps exact (no ``0.30000000000000004``); integers stay integers.
    Count with :func:`range_count` first: this builds every value.
    """
    count = range_count(start, stop, step, inclusive)
    first, _, delta = _decimals(start, stop, step)
    integral = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, step))
    values = (first + i * delta for i in range(count))
    return [int(v) if integral else float(v) for v in values]


def _decimals(*numbers: float) -> tuple[Decimal, ...]:
    try:
        values = tuple(Decimal(str(v)) for v in numbers)
    except InvalidOperation as exc:
        raise SweepError("range start, stop and step must be numbers") from exc
    if not all(v.is_finite() for v in values):
        raise SweepError("range start, stop and step must be finite numbers", hint="write a number")
    return values


def read_lines(path: Path, shown: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Non-blank lines not starting with ``#``, each once; also ``(line, first line)`` of each repeat."""
    values: list[str] = []
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    with _open(path, shown) as f:
        try:
            for number, line in enumerate(f, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                _refuse_nul(text, shown, number)
                if text in first:
                    repeats.append((number, first[text]))
                    continue
                first[text] = number
                values.append(text)
        except UnicodeDecodeError as exc:
            raise SweepError(f"{shown} is not UTF-8 text", hint="save it as UTF-8", file=shown) from exc
    if not values:
        raise SweepError(f"{shown} has no values (every line is blank or a # comment)", file=shown)
    return values, repeats


_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)$")


def csv_value(text: str) -> Any:
    """A CSV cell as a variable: numbers and true/false converted, an empty cell MISSING."""
    if text == "":
        return MISSING
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def read_rows(path: Path, shown: str) -> list[dict[str, Any]]:
    """The rows of a CSV file (header row first) or a JSON Lines file of objects with scalar values."""
    rows: list[dict[str, Any]] = []
    with _open(path, shown) as f:
        try:
            if path.suffix.lower() == ".csv":
                reader = csv.reader(f)
                header = next(reader, None)
                if not header or not any(h.strip() for h in header):
                    raise SweepError(
                        f"{shown} has no header row",
                        hint="the first row names the columns",
                        file=shown,
                        line=1,
                    )
                names = [h.strip() for h in header]
                for row in reader:
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) != len(names):
                        raise SweepError(
                            f"the row has {len(row)} cells, the header has {len(names)}",
                            file=shown,
                            line=reader.line_num,
                        )
                    for cell in row:
                        _refuse_nul(cell, shown, reader.line_num)
                    cells = {n: csv_value(c) for n, c in zip(names, row, strict=True)}
                    for name, value in cells.items():
                        if isinstance(value, float) and not math.isfinite(value):
                            raise SweepError(
                                f"{name!r} is not a finite number", file=shown, line=reader.line_num
                            )
                    rows.append({n: v for n, v in cells.items() if v is not MISSING})
            else:
                for number, line in enumerate(f, start=1):
                    if line.strip():
                        rows.append(_json_row(line, shown, number))
        except UnicodeDecodeError as exc:
            raise SweepError(f"{shown} is not UTF-8 text", hint="save it as UTF-8", file=shown) from exc
        except csv.Error as exc:
            raise SweepError(f"{shown}: malformed CSV: {exc}", file=shown) from exc
    if not rows:
        raise SweepError(f"{shown} has no rows", file=shown)
    return rows


def _json_row(line: str, shown: str, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SweepError(f"invalid JSON: {exc.msg}", file=shown, line=number, column=exc.colno) from exc
    if not isinstance(row, dict):
        raise SweepError("each line must be a JSON object", file=shown, line=number)
    for key, value in row.items():
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise SweepError(f"{key!r} must be a string, number or boolean", file=shown, line=number)
        _refuse_nul(f"{key}{value}", shown, number)
        if isinstance(value, float) and not math.isfinite(value):
            raise SweepError(f"{key!r} is not a finite number", file=shown, line=number)
    return {k: v for k, v in row.items() if v is not None}


def _refuse_nul(text: str, shown: str, line: int) -> None:
    if "\x00" in text:
        raise SweepError(
            "a NUL character in a value",
            hint=f"{shown} must be text: is it a binary file?",
            file=shown,
            line=line,
        )


def glob_files(base: Path, pattern: str) -> list[str]:
    """Files matching ``pattern`` relative to ``base``, sorted, as written relative to ``base`` (posix)."""
    matches = sorted(globlib.glob(pattern, root_dir=str(base), recursive=True))
    return [Path(m).as_posix() for m in matches if (base / m).is_file()]


def _open(path: Path, shown: str) -> Any:
    try:
        return open_regular(path, shown, binary=False)
    except NotRegularFileError as exc:
        raise SweepError(str(exc), hint=exc.hint) from exc
    except FileNotFoundError as exc:
        raise SweepError(
            f"file not found: {shown}", hint="paths are relative to the manifest's folder"
        ) from exc
    except OSError as exc:
        raise SweepError(f"cannot read {shown}: {exc.strerror or exc}") from exc


#: Pseudo-file systems whose "regular files" are the system's state (``/proc/self/environ`` holds the
#: environment, tokens included), never a user's data.
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


class NotRegularFileError(OSError):
    """A manifest named something other than a regular file: a device, a FIFO, a folder, /proc..."""

    def __init__(self, shown: str) -> None:
        super().__init__(f"{shown} is not a regular file")
        self.strerror = f"{shown} is not a regular file"
        self.hint = "a manifest reads regular files only (not devices, FIFOs, folders or /proc)"


def open_regular(path: Path, shown: str, *, binary: bool) -> Any:
    """Open ``path`` for reading if it is a regular file; :class:`NotRegularFileError` if not.

    Opened without blocking first, then checked on the open descriptor, so a FIFO (whose open would
    wait for a writer) or a device is refused at once, and nothing can be swapped in between. A NUL
    in the path is refused as a missing file would be.
    """
    if "\x00" in str(path):
        raise NotRegularFileError(shown)
    real = os.path.realpath(path)
    if any(real == root or real.startswith(root + os.sep) for root in _PSEUDO_ROOTS):
        raise NotRegularFileError(shown)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(shown)
        if binary:
            return os.fdopen(fd, "rb")
        return os.fdopen(fd, encoding="utf-8-sig", newline="")
    except BaseException:
        os.close(fd)
        raise
