from __future__ import annotations

import asyncio

import httpx
import pytest

from flux_batch.runner.transport import (
    HEADROOM,
    SHARD_SIZE,
    ShardedTransport,
    http_client,
    shard_limits,
)


class Gate(httpx.AsyncBaseTransport):
    """A shard that records what it was sent and answers each request when told to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []
        self.open = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        if request.url.path == "/boom":
            raise httpx.ConnectError("refused", request=request)
        await self.open.wait()
        return httpx.Response(200, content=self.name.encode())


def test_limits_leave_room_for_every_waiting_create_in_small_shards() -> None:
    for in_flight in (1, 10, 100, 500):
        limits = shard_limits(in_flight)
        assert sum(x.max_connections or 0 for x in limits) >= in_flight + HEADROOM
        assert all((x.max_connections or 0) <= SHARD_SIZE for x in limits)
        assert all(x.max_keepalive_connections == x.max_connections for x in limits)  # no reconnects


async def test_requests_go_to_the_least_busy_shard_and_free_it_when_closed() -> None:
    a, b = Gate("a"), Gate("b")
    transport = ShardedTransport([a, b])
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        # two slow requests hold one shard each; a third waits on the first shard
        first = asyncio.create_task(client.get("/1"))
        second = asyncio.create_task(client.get("/2"))
        await asyncio.sleep(0)
        assert (a.seen, b.seen) == (["/1"], ["/2"]) and transport.busy == (1, 1)
        b.open.set()
        assert (await second).text == "b"  # read and closed: b is free again
        assert transport.busy == (1, 0)
        third = await client.get("/3")
        assert third.text == "b" and b.seen == ["/2", "/3"]
        a.open.set()
        assert (await first).text == "a"
        assert transport.busy == (0, 0)


async def test_a_failed_request_gives_its_place_back() -> None:
    a = Gate("a")
    transport = ShardedTransport([a])
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/boom")
    assert transport.busy == (0,)


async def test_streamed_responses_free_their_shard_on_close() -> None:
    a = Gate("a")
    a.open.set()
    transport = ShardedTransport([a])
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        async with client.stream("GET", "/file") as response:
            assert transport.busy == (1,)
            assert b"".join([chunk async for chunk in response.aiter_bytes()]) == b"a"
        assert transport.busy == (0,)


def test_http_client_is_sharded_and_follows_redirects() -> None:
    client = http_client(100)
    assert isinstance(client._transport, ShardedTransport)
    assert client.follow_redirects
