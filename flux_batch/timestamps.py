"""Timestamps as the API writes them: ISO 8601 in UTC, read the same on every supported Python.

The API writes ``created_at`` with 3 fraction digits and ``started_at``/``completed_at`` with 9
(``2024-01-01T00:00:00.123456789Z``), a proxy may write 6 or none, and a ``Z`` or an offset. Before 3.11,
``datetime.fromisoformat`` takes only 3 or 6 fraction digits and no ``Z``, so every timestamp from the
API is read here instead: one pure parser for the runner (reconciling creates, expiry of output URLs), the
report and the simulator's list filters.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

_ISO = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d)[Tt ](?P<time>\d\d:\d\d(?::\d\d)?)(?:[.,](?P<frac>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d\d(?::?\d\d)?)?"
)


def epoch_seconds(text: str) -> float:
    """An ISO 8601 date-time -> seconds since the epoch, fraction digits kept (any number of them).

    ``Z`` or an offset (``+02:00``, ``+0200``, ``+02``); none means UTC. ValueError if malformed."""
    match = _ISO.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    try:
        stamp = datetime.fromisoformat(f"{match['date']}T{match['time']}").replace(tzinfo=timezone.utc)
    except ValueError as exc:  # a month 13, a 25th hour
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from exc
    zone = match["zone"] or "Z"
    offset = 0
    if zone not in "Zz":
        digits = zone[1:].replace(":", "")
        offset = (1 if zone[0] == "+" else -1) * (int(digits[:2]) * 3600 + int(digits[2:] or 0) * 60)
    return stamp.timestamp() - offset + float(f"0.{match['frac'] or 0}")


def parse_epoch(value: Any) -> float | None:
    """:func:`epoch_seconds` of an answer's field, or None when it is missing or not a date-time (an
    answer's field is read, never trusted)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return epoch_seconds(value)
    except ValueError:
        return None


def parse_utc(value: Any) -> datetime | None:
    """The date-time in UTC (microseconds kept), or None when it is missing or malformed."""
    epoch = parse_epoch(value)
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
