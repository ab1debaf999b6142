"""Which prediction ids flux-batch uses: the API client checks the ids it is given, the state store the ids
it reads back. A module of its own so that the store (and the tables' child process, which reads the state)
does not import the HTTP client."""

from __future__ import annotations

import re
from typing import Any

#: Replicate's ids are 26 lowercase base-32 characters; proxies use their own (UUIDs, upper case). Letters,
#: digits, ``-`` and ``_`` only, so that an id can never name another path of the API or of the folder.
PREDICTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def valid_id(value: Any) -> str | None:
    """``value`` if it is a prediction id flux-batch will use (see ``PREDICTION_ID``), else None."""
    if isinstance(value, str) and PREDICTION_ID.fullmatch(value):
        return value
    return None
