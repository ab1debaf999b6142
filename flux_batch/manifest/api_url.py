"""The API's base URL: whether one is usable, and whether it is Replicate's own API or this machine.

Pure. The manifest (``api.base_url``) and the command line (``--base-url``) check a URL with
:func:`check_base_url`, so a malformed one is refused before anything runs, with the same words in both.
:func:`is_replicate` and :func:`is_loopback` tell whether the token sent with every request leaves for a
host other than Replicate's (which ``run`` asks the user to confirm when a manifest chose it).
"""

from __future__ import annotations

import ipaddress

import httpx

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
REPLICATE_HOST = "api.replicate.com"


class BaseUrlError(ValueError):
    """A base URL that cannot be used; ``str()`` says why and ``hint`` how to write one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.hint = "write it like https://api.replicate.com/v1 or https://proxy.example/replicate/v1"


def check_base_url(text: str) -> str:
    """``text`` as a base URL (without a trailing ``/``); :class:`BaseUrlError` if it cannot be one."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BaseUrlError(f"{text!r} is not a valid URL ({exc})") from exc
    if url.scheme not in ("http", "https"):
        raise BaseUrlError(f"{text!r} must start with https:// (or http://)")
    if not url.host:
        raise BaseUrlError(f"{text!r} has no host")
    if any(c in url.host for c in "% \t"):
        raise BaseUrlError(f"{text!r} has an invalid host")
    if url.port is not None and not 0 < url.port < 65536:
        raise BaseUrlError(f"{text!r} has an invalid port ({url.port})")
    if url.userinfo or url.query or url.fragment:
        raise BaseUrlError(f"{text!r} must be scheme://host[:port]/path, without a user, query or fragment")
    return text.rstrip("/")


def host_of(base_url: str) -> str:
    """``scheme://host[:port]`` of a base URL checked by :func:`check_base_url`."""
    url = httpx.URL(base_url)
    port = f":{url.port}" if url.port else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}"


def is_replicate(base_url: str) -> bool:
    """True for Replicate's own API over https (any path: the default is ``/v1``)."""
    url = httpx.URL(base_url)
    return url.scheme == "https" and url.host == REPLICATE_HOST and url.port in (None, 443)


def is_loopback(base_url: str) -> bool:
    """True when requests stay on this machine (localhost, 127.0.0.0/8, ::1): a token sent there does
    not leave it."""
    host = httpx.URL(base_url).host
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
