"""Sweeps: product, zip, cases, ranges, files, include/exclude (GitHub Actions rules), repeat, counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_batch.manifest.sweep import (
    MISSING,
    Sweep,
    SweepError,
    axis,
    csv_value,
    glob_files,
    number_range,
    read_lines,
    read_rows,
    table,
    zipped,
)

DATA = Path(__file__).parent / "cases" / "data"


def combos(sweep: Sweep) -> list[dict[str, object]]:
    return list(sweep.combinations())


def test_product_first_axis_slowest_and_count() -> None:
    sweep = Sweep((axis("c", ["r", "b"]), axis("g", [2, 3, 4])))
    assert [tuple(c.values()) for c in combos(sweep)] == [
        ("r", 2),
        ("r", 3),
        ("r", 4),
        ("b", 2),
        ("b", 3),
        ("b", 4),
    ]
    assert sweep.count() == 6


def test_no_factors_is_one_empty_combination() -> None:
    assert combos(Sweep()) == [{}]
    assert Sweep().count() == 1


def test_zip_takes_values_together() -> None:
    sweep = Sweep((zipped({"w": [512, 768], "h": [768, 512]}), axis("s", ["x"])))
    assert combos(sweep) == [{"w": 512, "h": 768, "s": "x"}, {"w": 768, "h": 512, "s": "x"}]


def test_zip_unequal_lengths_names_both() -> None:
    with pytest.raises(SweepError, match="a has 2, b has 1"):
        zipped({"a": [1, 2], "b": [1]})


def test_cases_rows_may_leave_variables_out() -> None:
    factor = table([{"s": "owl", "g": 5}, {"s": "fox"}])
    assert factor.rows[1] == ("fox", MISSING)
    assert combos(Sweep((factor,))) == [{"s": "owl", "g": 5}, {"s": "fox"}]


def test_repeat_adds_index_innermost() -> None:
    sweep = Sweep((axis("c", ["r", "b"]),), repeat=2)
    assert combos(sweep) == [
        {"c": "r", "repeat": 0},
        {"c": "r", "repeat": 1},
        {"c": "b", "repeat": 0},
        {"c": "b", "repeat": 1},
    ]
    assert sweep.count() == 4 and sweep.names == ("c", "repeat")


def test_exclude_drops_matching_combinations() -> None:
    sweep = Sweep((axis("c", ["r", "b"]), axis("g", [2, 3])), exclude=({"c": "r", "g": 3},))
    assert combos(sweep) == [{"c": "r", "g": 2}, {"c": "b", "g": 2}, {"c": "b", "g": 3}]
    assert sweep.count() == 3


def test_include_extends_matching_and_adds_unmatched_like_github_actions() -> None:
    sweep = Sweep(
        (axis("c", ["r", "b"]), axis("g", [2, 3])),
        include=({"c": "r", "style": "noir"}, {"c": "green", "g": 9}, {"label": "all"}),
    )
    result = combos(sweep)
    assert result[0] == {"c": "r", "g": 2, "style": "noir", "label": "all"}
    assert result[2] == {"c": "b", "g": 2, "label": "all"}
    assert result[-1] == {"c": "green", "g": 9}
    assert sweep.count() == 5
    assert sweep.names == ("c", "g", "style", "label")


def test_include_without_factors_lists_combinations() -> None:
    assert combos(Sweep(include=({"a": 1}, {"a": 2}))) == [{"a": 1}, {"a": 2}]


def test_count_with_rules_stops_past_limit() -> None:
    sweep = Sweep((axis("a", list(range(1000))), axis("b", list(range(1000)))), exclude=({"a": -1},))
    assert 10 < sweep.count(limit=10) <= 11


def test_combinations_stream() -> None:
    sweep = Sweep(tuple(axis(f"v{i}", list(range(100))) for i in range(4)))  # 100 million
    first = next(iter(sweep.combinations()))
    assert first == {"v0": 0, "v1": 0, "v2": 0, "v3": 0}
    assert sweep.count() == 100_000_000


@pytest.mark.parametrize(
    ("args", "values"),
    [
        ((10, 50, 10), [10, 20, 30, 40, 50]),
        ((10, 50, 10, False), [10, 20, 30, 40]),
        ((2, 3, 0.25), [2.0, 2.25, 2.5, 2.75, 3.0]),
        ((0, 1, 0.3), [0.0, 0.3, 0.6, 0.9]),
        ((5, 1, -2), [5, 3, 1]),
        ((1, 1, 1), [1]),
    ],
)
def test_number_range(args: tuple, values: list) -> None:
    assert number_range(*args) == values


@pytest.mark.parametrize("args", [(5, 1, 1), (1, 2, 0), (1, 1, 1, False)])
def test_empty_ranges_refused(args: tuple) -> None:
    with pytest.raises(SweepError):
        number_range(*args)


def test_read_lines_skips_blank_comment_and_repeated_lines() -> None:
    values, repeats = read_lines(DATA / "prompts.txt", "prompts.txt")
    assert values == ["a cat", "a dog"]
    assert repeats == [(5, 1)]


def test_read_rows_csv_and_jsonl() -> None:
    assert read_rows(DATA / "rows.csv", "rows.csv") == [
        {"subject": "cat", "guidance": 2},
        {"subject": "dog", "guidance": 3.5},
    ]
    assert read_rows(DATA / "rows.jsonl", "rows.jsonl") == [
        {"subject": "owl", "guidance": 4},
        {"subject": "fox"},
    ]


def test_read_rows_errors_are_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(SweepError) as info:
        read_rows(bad, "bad.csv")
    assert (info.value.file, info.value.line) == ("bad.csv", 3)
    with pytest.raises(SweepError, match="file not found"):
        read_rows(tmp_path / "none.jsonl", "none.jsonl")


def test_csv_values() -> None:
    assert [csv_value(v) for v in ("3", "2.5", "true", "x", "")] == [3, 2.5, True, "x", MISSING]


def test_glob_files_relative_and_sorted() -> None:
    assert glob_files(DATA, "photo-*.png") == ["photo-a.png", "photo-b.png"]
    assert glob_files(DATA, "*.none") == []


@pytest.mark.timeout(10)
def test_count_of_a_huge_product_that_exclude_empties_does_not_scan_it_all() -> None:
    # 10**10 combinations, every one excluded: counting them one by one would take hours
    big = list(range(100_000))
    sweep = Sweep((axis("a", big), axis("b", big), axis("c", [1])), exclude=({"c": 1},))
    assert sweep.count(limit=1000) == 10**10  # its size before the rules: over the limit, refused
    small = Sweep((axis("a", list(range(100))), axis("c", [1, 2])), exclude=({"c": 1},))
    assert small.count(limit=1000) == 100  # within SCAN_FACTOR * limit: counted exactly
