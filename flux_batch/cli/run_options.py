"""``run``'s command line: each value checked as it is parsed, and what the flags and the manifest decide
together (a flag given on the command line always wins over the manifest's ``api:`` setting).

Pure apart from reading the token's environment variable. Errors are one line naming the flag, the value
and what is allowed; a token is never repeated in a message.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flux_batch import defaults
from flux_batch.api_url import DEFAULT_BASE_URL, BaseUrlError, check_base_url, is_loopback, is_replicate
from flux_batch.errors import InputError, MissingTokenError, UsageError
from flux_batch.manifest import ApiSettings

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
    """An argparse type: an http(s) URL with a host, as :func:`flux_batch.api_url.check_base_url`."""
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


@dataclass(frozen=True)
class ApiChoice:
    """The manifest's ``api:`` settings with the command line's flags put over them (``settings``), and
    where the base URL came from (``base_url_from``: ``"command line"``, ``"manifest"`` or ``"default"``)."""

    settings: ApiSettings
    base_url_from: str

    @property
    def token_leaves_for_another_host(self) -> bool:
        """True when the manifest, not the user's own command line, sends the token to a host that is
        neither Replicate's API nor this machine: that needs the user's confirmation (or ``--yes``)."""
        api = self.settings
        return (
            not api.simulator
            and self.base_url_from == "manifest"
            and not is_replicate(api.base_url)
            and not is_loopback(api.base_url)
        )


def choose_api(args: argparse.Namespace, api: ApiSettings) -> ApiChoice:
    """The manifest's ``api:`` settings with every flag given on the command line put over them.

    ``--base-url`` and ``--no-simulator`` mean the real API (or a proxy) even when the manifest says
    ``simulator: true``; ``--simulator`` means the simulator whatever the manifest says. A flag of 0 is a
    value, not "unset" (``--wait 0`` does not hold the create call).
    """
    if args.simulator and (args.base_url or args.no_simulator):
        other = "--base-url" if args.base_url else "--no-simulator"
        raise UsageError(f"--simulator and {other} contradict each other: give one of them")
    if args.base_url:
        url_from = "command line"
    elif api.base_url != DEFAULT_BASE_URL:
        url_from = "manifest"
    else:
        url_from = "default"
    given = {
        "base_url": args.base_url,
        "create_rpm": args.create_rpm,
        "other_rpm": args.other_rpm,
        "max_in_flight": args.max_in_flight,
        "wait": args.wait,
    }
    settings = dataclasses.replace(
        api,
        simulator=bool(args.simulator or (api.simulator and not (args.base_url or args.no_simulator))),
        **{name: value for name, value in given.items() if value is not None},
    )
    return ApiChoice(settings, url_from)


def read_token(env_var: str, environ: Mapping[str, str]) -> str:
    """The API token from ``environ[env_var]``, stripped; a clear error when it is unset, or holds a
    character an HTTP header cannot carry. The message never contains the token."""
    token = environ.get(env_var, "").strip()
    if not token:
        raise MissingTokenError(env_var)
    for position, char in enumerate(token, start=1):
        if not 0x21 <= ord(char) <= 0x7E:
            what = (
                "a line break"
                if char in "\r\n"
                else "a space or control character"
                if ord(char) < 0x80
                else "a non-ASCII character"
            )
            raise InputError(
                f"the API token in {env_var} has {what} at character {position}, which cannot be sent in "
                f"a request header: set {env_var} to the token alone (export {env_var}=r8_...)"
            )
    return token
