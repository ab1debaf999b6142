from __future__ import annotations

import pytest

from flux_batch.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1h30m45s", 5445), ("90", 90), (12, 12), ("2.5s", 2.5)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (59.6, "1m00s"),
        (60, "1m00s"),
        (100, "1m40s"),  # was "2m40s": minutes rounded, not floored
        (3599, "59m59s"),
        (3599.6, "1h00m"),
        (3600, "1h00m"),
        (7140, "1h59m"),
        (7170, "2h00m"),  # was "1h60m"
        (100_000, "27h47m"),
    ],
)
def test_format_duration_at_the_boundaries(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
