"""Retry policies: capped, jittered exponential backoff as small pure callables.

A policy maps the attempt number (1 for the first retry) to a delay in seconds. Randomness comes from an
injected ``random.Random`` so tests assert the exact delays. :func:`retry_call` runs an async call with a
policy, an injected ``sleep`` and a predicate saying which errors are worth another try; it is used for
get, list, cancel, upload and downloads (never for create, whose failures are resolved by
:mod:`flux_batch.runner.reconcile`).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from flux_batch.errors import (
    BadOutputError,
    DownloadError,
    FluxBatchError,
    ListingError,
    OutputGoneError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnknownStatusError,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """``initial * multiplier**(attempt-1)``, capped at ``maximum``, with "full jitter" in
    ``[delay * (1 - jitter), delay]``.

    Use it for anything retried against a shared server: the jitter keeps many clients (or many jobs of
    one client) from retrying in lock step after a common failure.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __call__(self, attempt: int, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * rng.random())


#: Retries of get, list, cancel, upload and download calls.
REQUEST_BACKOFF = Backoff(initial=0.5, maximum=30.0)
#: Polling a prediction that is still running: start soon, then back off gently.
POLL_BACKOFF = Backoff(initial=0.5, maximum=10.0, multiplier=1.5, jitter=0.2)


def is_transient(err: BaseException) -> bool:
    """True for failures that another identical request may not hit: 5xx, 429, transport errors,
    a garbled response, a download that broke or failed its checks (a file host's 404 included: only the
    API says an output is gone), but not an output the API says is gone, an image that is no acceptable
    image, an unknown status or a list that does not end."""
    if isinstance(err, (OutputGoneError, BadOutputError, UnknownStatusError, ListingError)):
        return False
    return isinstance(err, (ServerError, RateLimitedError, TransportError, ProtocolError, DownloadError))


def delay_for(err: BaseException, attempt: int, policy: Backoff, rng: random.Random) -> float:
    """The wait before retry ``attempt``: the server's hint on a 429 if it gave one, else the policy."""
    if isinstance(err, RateLimitedError) and err.retry_after is not None:
        return max(0.0, err.retry_after)
    return policy(attempt, rng)


async def retry_call(
    call: Callable[[], Awaitable[T]],
    *,
    sleep: Sleep,
    rng: random.Random,
    policy: Backoff = REQUEST_BACKOFF,
    attempts: int = 6,
    retry_if: Callable[[BaseException], bool] = is_transient,
    on_retry: Callable[[FluxBatchError, float], None] | None = None,
) -> T:
    """Await ``call()``; on an error that ``retry_if`` accepts, sleep and try again, up to ``attempts``
    calls in all. The last error propagates unchanged."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except FluxBatchError as err:
            if attempt >= attempts or not retry_if(err):
                raise
            delay = delay_for(err, attempt, policy, rng)
            if on_retry is not None:
                on_retry(err, delay)
            await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
