"""The API's timestamps, read the same on every supported Python (3.10's ``fromisoformat`` refuses 9
fraction digits and a ``Z``; the API writes ``started_at``/``completed_at`` with both)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

import flux_batch
from flux_batch.timestamps import epoch_seconds, parse_epoch, parse_utc

MIDNIGHT = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2024-01-01T00:00:00.123456789Z", 0.123456789),  # completed_at as the API writes it
        ("2024-01-01T00:00:00.123Z", 0.123),  # created_at
        ("2024-01-01T00:00:00.1234Z", 0.1234),  # 4 digits: neither 3 nor 6
        ("2024-01-01T00:00:00Z", 0.0),
        ("2024-01-01T00:00:00z", 0.0),
        ("2024-01-01T00:00:00.5+00:00", 0.5),
        ("2024-01-01T02:00:00.123456789+02:00", 0.123456789),
        ("2024-01-01T02:00:00+0200", 0.0),
        ("2024-01-01T02:00:00+02", 0.0),
        ("2023-12-31T22:30:00-01:30", 0.0),
        ("2024-01-01 00:00:00.25", 0.25),  # no zone: UTC
        ("2024-01-01T00:00", 0.0),
        (" 2024-01-01T00:00:00Z\n", 0.0),
    ],
)
def test_every_form_the_api_and_proxies_write(text: str, seconds: float) -> None:
    assert epoch_seconds(text) == pytest.approx(MIDNIGHT + seconds, abs=1e-6)
    assert parse_epoch(text) == pytest.approx(MIDNIGHT + seconds, abs=1e-6)


def test_the_nine_digits_are_kept_to_the_float_s_precision() -> None:
    late = epoch_seconds("2024-01-01T00:00:00.999999999Z") - MIDNIGHT
    assert late == pytest.approx(0.999999999, abs=1e-7)  # not cut to .999999


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z", "2024-01-01", "2024-01-01T00:00:00+2"],
)
def test_a_malformed_time_is_none_or_a_value_error(text: str) -> None:
    assert parse_epoch(text) is None and parse_utc(text) is None
    with pytest.raises(ValueError):
        epoch_seconds(text)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["2024-01-01T00:00:00Z"], {}])
def test_a_field_of_another_type_is_none(value: object) -> None:
    assert parse_epoch(value) is None and parse_utc(value) is None


def test_parse_utc_is_an_aware_utc_datetime() -> None:
    moment = parse_utc("2024-01-01T01:02:03.123456789+01:00")
    assert moment == datetime(2024, 1, 1, 0, 2, 3, 123457, tzinfo=timezone.utc)


def test_the_package_reads_times_only_here() -> None:
    """Elsewhere ``fromisoformat`` read the API's ``completed_at`` as None on Python 3.10, so the runner
    skipped its expiry check and its clock-offset sample (runner/fetch.py, runner/job_flow.py)."""
    package = Path(flux_batch.__file__).parent
    readers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "fromisoformat(" in path.read_text(encoding="utf-8") and path.name != "timestamps.py"
    ]
    assert readers == []
