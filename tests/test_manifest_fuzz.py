"""Fuzzing ``validate`` and ``plan`` with mutated manifests: every outcome is exit 0 or 2, never a
traceback (or the one-line "internal error", exit 70) and never a hang.

Mutations start from the shipped pipelines and a few invalid cases, and work on the text (bytes that
YAML dislikes, cut lines, swapped characters) or on the parsed tree (values replaced with hostile ones:
huge ranges, non-finite numbers, NUL characters, devices, FIFOs and /proc as files, deep nesting, wrong
types, typos in keys, stages referring to each other). The quick suite tries every hostile value where
values are read (deterministically) and a fixed sample of random mutations; the slow suite a longer
random run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flux_batch.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [
    *sorted((ROOT / "pipelines").glob("*.yaml")),
    *(
        ROOT / "tests" / "cases" / "invalid" / f"{name}.yaml"
        for name in ("where_unknown", "bad_jsonl", "cycle")
    ),
]
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in SEEDS]
#: A hung validate or plan fails the example after this long (a guard against hangs, not a timing test).
HANG_S = 20

HOSTILE: list[Any] = [
    -1,
    0,
    1,
    3,
    "3",
    2**63,
    10**11,
    1e308,
    -1e-308,
    float("inf"),
    float("nan"),
    "",
    "x" * 2000,
    "nul\x00byte",
    "{",
    "}",
    "{x}",
    "{subject} {nope}",
    "16:9",
    True,
    None,
    [],
    {},
    [[[[[[[[]]]]]]]],
    {"range": {"start": 0, "stop": 10**11}},
    {"range": {"start": 0, "stop": 1, "step": 1e-9}},
    {"range": {"start": 0, "stop": float("inf")}},
    {"range": {"start": float("nan"), "stop": 1}},
    {"file": "/dev/zero"},
    {"file": "fifo.txt"},
    {"file": "/proc/self/environ"},
    {"file": "data"},
    {"file": "data/rows.csv"},
    {"glob": "**/*"},
    {"glob": "/dev/*"},
    {"from": "product"},
    {"from": "gen", "where": {"x": "3"}},
    {"from": "sketch", "where": {"subject": ["lighthouse on a cliff", 7]}},
    "black-forest-labs/flux-pro",
    "black-forest-labs/flux-kontext-pro",
    "someone/unknown-model",
    "http://[::1/v1",
    "https://collect.example/v1",
    "custom",
]
PIECES = [b"\x00", b"\t", b"{", b"}", b"[", b"]", b":", b": ", b"- ", b"&a ", b"*a", b"!!python/object ",
          b"\n", b"\xff", b"'", b'"', b"#", b"---\n", b"9" * 30, b"<<: *a\n", "é".encode(),
          b"\r"]  # fmt: skip
KEYS = ["id", "model", "prompt", "input", "matrix", "zip", "cases", "repeat", "needs", "include", "exclude",
        "same_seed_across", "seed", "guidance", "num_outputs", "input_image", "where", "from", "api",
        "base_url", "simulator", "max_jobs", "max_cost_usd", "output", "promt", "width"]  # fmt: skip


def paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*at, i))


def hostile(draw: Any, extra: tuple[Any, ...] = ()) -> Any:
    return copy.deepcopy(draw(st.sampled_from([*HOSTILE, *extra])))  # mutating it must not touch HOSTILE


def mutate_tree(data: Any, draw: Any) -> Any:
    """A few edits anywhere in the tree, or one aimed where values are read: an axis, an input, api."""
    if (
        isinstance(data, dict)
        and isinstance(data.get("stages"), list)
        and data["stages"]
        and draw(st.booleans())
    ):
        stage = draw(st.sampled_from(data["stages"]))
        if isinstance(stage, dict):
            section = draw(st.sampled_from(["matrix", "input", "api"]))
            target = data if section == "api" else stage
            if not isinstance(target.get(section), dict):
                target[section] = {}
            name = draw(st.sampled_from(["x", "subject", "guidance", "num_outputs", "seed", "input_image",
                                         "base_url", "wait", "aspect_ratio"]))  # fmt: skip
            target[section][name] = hostile(draw)
            return data
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(data))))
        if not where:
            continue
        parent: Any = data
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add", "wrap", "deepen"]))
        if action == "replace":
            parent[last] = hostile(draw)
        elif action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = parent.pop(last)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = hostile(draw)
        elif action == "add" and isinstance(parent, list):
            parent.append(hostile(draw, (parent[last],)))
        elif action == "wrap":
            parent[last] = draw(
                st.sampled_from([[parent[last]], {"range": parent[last]}, {"x": parent[last]}])
            )
        elif action == "deepen":
            value = parent[last]
            for _ in range(draw(st.sampled_from([10, 70, 500]))):
                value = [value]
            parent[last] = value
    return data


def mutate_text(text: str, draw: Any) -> bytes:
    raw = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut", "duplicate"]))
        piece = draw(st.sampled_from(PIECES))
        if action == "insert":
            raw[at:at] = piece
        elif action == "delete":
            del raw[at : at + draw(st.integers(1, 20))]
        elif action == "replace":
            raw[at : at + len(piece)] = piece
        elif action == "cut":
            del raw[at:]
        else:
            end = raw.find(b"\n", at)
            raw[at:at] = raw[at : end if end > 0 else len(raw)]
    return bytes(raw)


@st.composite
def manifests(draw: Any) -> bytes:
    text = draw(st.sampled_from(SEED_TEXTS))
    if draw(st.integers(0, 3)) == 0:  # most edits keep the YAML readable, to reach the checks behind it
        return mutate_text(text, draw)
    data = mutate_tree(yaml.safe_load(text), draw)
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10**6).encode("utf-8")
    except (yaml.YAMLError, RecursionError):
        return text.encode("utf-8")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shaped like the seeds': the pipelines' data files, the cases' data, a FIFO."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "cases" / "invalid").mkdir(parents=True)
    shutil.copytree(ROOT / "pipelines" / "data", root / "cases" / "invalid" / "data")
    shutil.copytree(ROOT / "tests" / "cases" / "data", root / "cases" / "data")
    for path in (root / "cases" / "data").iterdir():
        shutil.copy(path, root / "cases" / "invalid" / "data" / path.name)
    os.mkfifo(root / "cases" / "invalid" / "fifo.txt")
    return root / "cases" / "invalid"


@contextlib.contextmanager
def hang_guard(seconds: int) -> Iterator[None]:
    def hung(signum: int, frame: Any) -> None:
        raise AssertionError(f"no answer in {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check(workdir: Path, text: bytes, commands: tuple[str, ...] = ("validate", "plan")) -> None:
    manifest = workdir / "m.yaml"
    manifest.write_bytes(text)
    for command in commands:
        out, err = io.StringIO(), io.StringIO()
        with hang_guard(HANG_S), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([command, "--max-jobs", "5000", str(manifest)])
        shown = err.getvalue()
        assert code in (0, 2), f"{command} exit {code}: {shown}\n--- manifest:\n{text!r}"
        assert "Traceback" not in shown, shown
        if code == 2:
            assert shown.strip(), f"{command} exit 2 without a word\n--- manifest:\n{text!r}"


COMMON: dict[str, Any] = dict(
    database=None,  # nothing written beside the checkout
    deadline=None,  # no timing test: hang_guard catches a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_the_seeds_are_what_the_fuzzer_starts_from(workdir: Path) -> None:
    for text in SEED_TEXTS:
        check(workdir, text.encode("utf-8"))


def test_every_hostile_value_where_values_are_read(workdir: Path) -> None:
    """Not left to chance: each hostile value as an axis, as an input, and as an api setting."""
    seed = yaml.safe_load((ROOT / "pipelines" / "chain.yaml").read_text(encoding="utf-8"))
    for value in HOSTILE:
        for section, name in (
            ("matrix", "x"),
            ("input", "input_image"),
            ("input", "guidance"),
            ("api", "wait"),
        ):
            data = copy.deepcopy(seed)
            target = data if section == "api" else data["stages"][1]
            target.setdefault(section, {})[name] = copy.deepcopy(value)
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")
            check(workdir, text, ("validate",))  # plan loads the same way (the random fuzz runs both)


@settings(max_examples=60, derandomize=True, **COMMON)  # the same 60 every time: the quick suite
@given(text=manifests())
def test_validate_and_plan_answer_0_or_2_for_mutated_manifests(workdir: Path, text: bytes) -> None:
    check(workdir, text)


@pytest.mark.slow
@settings(max_examples=2500, **COMMON)
@given(text=manifests())
def test_validate_and_plan_answer_0_or_2_for_many_mutated_manifests(workdir: Path, text: bytes) -> None:
    check(workdir, text)
