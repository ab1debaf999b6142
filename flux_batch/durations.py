"""Durations as people and the API write them: ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``.

One parser for the manifest's ``api.deadline``, the simulator's options and the ``Cancel-After`` header.
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


def format_duration(seconds: float) -> str:
    """Seconds as ``"45s"``, ``"1m40s"`` or ``"2h00m"``: to the second, and past an hour to the minute."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(round(total / 60), 60)
    return f"{hours}h{minutes:02d}m"
