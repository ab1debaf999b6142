"""The HTTP client of real runs: one ``httpx.AsyncClient`` over several small connection pools.

Why not one pool: ``Prefer: wait`` holds a connection for every prediction in flight, so a run at 100
creates a second keeps some 120 connections open, and httpcore (1.0) re-examines every connection of its
pool, each idle one against all the others, whenever a request starts or ends. At that size the
bookkeeping cost more CPU than everything else a job does (bench/runner.py: 14 of 39 s of the runner's
CPU). Spreading requests over shards of at most ``SHARD_SIZE`` connections keeps each scan short. Each
request goes to the shard with the fewest requests under way, and its place is given back when its
response is closed. Timeouts, redirects, headers and everything above the transport stay as they were.

Every connection a shard opened stays alive when idle (a scan of at most ``SHARD_SIZE`` is cheap): with
only a few kept idle across all shards, nearly every create and download opened a new connection (3,752
connects for 2,000 jobs at 100 creates a second, against 149-165 when all are kept), and against the real API
each of those is a TLS handshake.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence

import httpx

#: Connections a shard may open. Small enough that httpcore's per-request scan stays cheap.
SHARD_SIZE = 16
#: Connections beyond ``max_in_flight``: downloads, polls and uploads beside the waiting creates.
HEADROOM = 20


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that calls ``release`` once when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the least busy of several transports."""

    def __init__(self, shards: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not shards:
            raise ValueError("a sharded transport needs at least one shard")
        self._shards = list(shards)
        self._busy = [0] * len(shards)

    @property
    def busy(self) -> tuple[int, ...]:
        """Requests under way on each shard (sent and not yet closed)."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, lambda: self._release(index)),
            extensions=response.extensions,
        )

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def shard_limits(max_in_flight: int) -> list[httpx.Limits]:
    """Per-shard connection limits for ``max_in_flight`` predictions: room for every waiting create plus
    ``HEADROOM``, in shards of at most ``SHARD_SIZE``, every connection kept alive when idle."""
    total = max(1, max_in_flight) + HEADROOM
    count = math.ceil(total / SHARD_SIZE)
    per_shard = math.ceil(total / count)
    return [httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)] * count


def http_client(max_in_flight: int) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` that ``flux-batch run`` uses against a real API or a served simulator."""
    shards = [httpx.AsyncHTTPTransport(limits=limits) for limits in shard_limits(max_in_flight)]
    return httpx.AsyncClient(transport=ShardedTransport(shards), follow_redirects=True)
