"""``run``'s command line: each value checked as it is parsed (argparse types).

What the flags and the manifest decide together is the library's (:mod:`flux_batch.runner.prepare`): a
flag given on the command line always wins over the manifest's ``api:`` setting. Errors are one line
naming the flag, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from flux_batch import defaults
from flux_batch.manifest.api_url import BaseUrlError, check_base_url

MAX_WAIT_S = defaults.MAX_WAIT_S


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            shown = text if _is_number(text) else repr(text)
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, not {shown}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        shown = text if _is_number(text) else repr(text)
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {shown}")
    return value


def wait_seconds(text: str) -> int:
    """An argparse type: 0 to 60 whole seconds. 0 does not hold the create call (poll from the start)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_WAIT_S:
        raise argparse.ArgumentTypeError(
            f"must be 0 to {MAX_WAIT_S} seconds, not {text} (the API holds a create for at most "
            f"{MAX_WAIT_S} s; 0 does not hold it and polls instead)"
        )
    return value


def base_url(text: str) -> str:
    """An argparse type: an http(s) URL with a host, as :func:`flux_batch.manifest.api_url.check_base_url`."""
    try:
        return check_base_url(text)
    except BaseUrlError as exc:
        raise argparse.ArgumentTypeError(f"{exc} ({exc.hint})") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
