"""docs/running.md's "What flux-batch promises" names, for each promise, the tests that prove it: every
test it names exists (a renamed or deleted test would leave a promise unproved without a word)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def promises_section() -> str:
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    return text.split("## What flux-batch promises", 1)[1].split("\n## ", 1)[0]


def test_every_test_the_promises_name_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", promises_section())
    assert len(named) >= 30
    missing = []
    for path, function in sorted(set(named)):
        source = ROOT / path
        defined = source.is_file() and re.search(
            rf"^(?:async )?def {function}\(", source.read_text(encoding="utf-8"), re.MULTILINE
        )
        if not defined:
            missing.append(f"{path}::{function}")
    assert not missing, f"docs/running.md names tests that do not exist: {missing}"


def test_every_promise_has_a_test() -> None:
    rows = [line for line in promises_section().splitlines() if line.startswith("| ") and "---" not in line]
    unproved = [row for row in rows if not row.startswith("| guarantee") and "tests/" not in row]
    assert not unproved, unproved
