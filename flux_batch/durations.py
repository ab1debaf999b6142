"""Durations as people and the API write them: ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``.

One parser for the manifest's ``api.deadline``, the simulator's options and the ``Cancel-After`` header,
and one formatter for ``plan``, ``status`` and the report.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str | float) -> float:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"1h30m45s"`` or plain seconds (``"90"``, ``90``) -> seconds.

    ValueError if malformed.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or a number of seconds")
    h, m, s = (float(match[k] or 0) for k in ("h", "m", "s"))
    return h * 3600 + m * 60 + s


def format_duration(seconds: float | None, *, words: bool = False, unknown: str = "?") -> str:
    """Seconds as ``"45s"``, ``"1m40s"`` or ``"2h00m"``: to the second, and past an hour to the minute.

    ``words=True`` is the report's spelling: ``"4.2 s"`` (tenths below 10 s), ``"1 min 23 s"``,
    ``"1 h 2 min"``. Anything that is not a number (None: not known yet) is shown as ``unknown``.

    >>> format_duration(100), format_duration(83.4, words=True), format_duration(None, unknown="-")
    ('1m40s', '1 min 23 s', '-')
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return unknown
    total = round(seconds)
    if total < 60:
        if words:
            return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
        return f"{total}s"
    if total < 3600 or words:
        minutes, secs = divmod(total, 60)
        if words:
            hours, mins = divmod(minutes, 60)
            return f"{hours} h {mins} min" if hours else f"{minutes} min {secs} s"
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(round(total / 60), 60)
    return f"{hours}h{minutes:02d}m"
