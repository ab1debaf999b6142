"""Resolving an ambiguous create: did the request that timed out (or got a 5xx) create a prediction?

There is no idempotency key, so the only way to know is to list the predictions created in the window
where that create's prediction can be (:mod:`flux_batch.runner.clock_offset`: from the measured clock offset,
``created_after`` and ``created_before``) and look for one with the same model (or version) and the same
input, compared as canonical JSON. Found: re-attach to it, pay once. Listing works and nothing matches:
nothing was created, create again safely. Listing is not supported (some proxies answer 404 or 405): follow
the configured policy, ``"create"`` (create again and count a possible duplicate) or ``"fail"`` (fail the
job, pay nothing more).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flux_batch.errors import NotFoundError, ProtocolError
from flux_batch.jobs.ids import canonical_json
from flux_batch.runner.client import ApiClient, Prediction
from flux_batch.runner.clock_offset import Window
from flux_batch.timestamps import parse_epoch

POLICIES = ("create", "fail")


@dataclass(frozen=True)
class Found:
    """The outcome of a search: ``prediction`` if one matched; ``listed`` False if listing is unsupported."""

    prediction: Prediction | None
    listed: bool


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def matches(prediction: Prediction, model: str, version: str | None, sent_input: Mapping[str, Any]) -> bool:
    """Same model (or version) and the same input, whatever the key order or number spelling."""
    if version:
        if prediction.version and prediction.version.split(":")[-1] != version:
            return False
    elif prediction.model and prediction.model != model:
        return False
    return canonical_json(prediction.input) == canonical_json(sent_input)


async def find_created(
    client: ApiClient,
    *,
    model: str,
    version: str | None,
    sent_input: Mapping[str, Any],
    window: Window,
    is_known: Callable[[str], bool],
    before_page: Callable[[], Awaitable[object]] | None = None,
) -> Found:
    """Look for a prediction created within ``window`` (API epoch seconds) for this request, skipping ones
    already attached to a job (``is_known``). The oldest match wins. ``before_page`` is awaited before each
    page is requested (the caller's limiter)."""
    match: Prediction | None = None
    pages = client.list_created_after(iso_utc(window.after), iso_utc(window.before), before_page=before_page)
    try:
        async for prediction in pages:
            created = parse_epoch(prediction.created_at)
            if created is not None and created < window.after:
                break  # newest first: everything from here on is older
            if created is not None and created >= window.before:
                continue  # a server that ignored created_before
            if matches(prediction, model, version, sent_input) and not is_known(prediction.id):
                match = prediction
    except NotFoundError:
        return Found(None, listed=False)
    except ProtocolError as err:
        if err.status in (400, 405, 501):
            return Found(None, listed=False)
        raise
    return Found(match, listed=True)


def should_create_again(found: Found, policy: str) -> bool:
    """After a search that matched nothing: create again? (Listing worked, or the policy says so.)"""
    if found.prediction is not None:
        return False
    return found.listed or policy == "create"
