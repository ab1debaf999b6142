"""An overall deadline on an awaitable, run in the caller's own task.

httpx's timeouts bound each connect, write and read, and a read's clock restarts with every byte: a server
that trickles one byte every few seconds never trips them. Every API call and download is therefore also
run :func:`within` an overall deadline. ``asyncio.timeout`` (Python 3.11+) keeps the call in the caller's
task, so requests start in the order their callers reach them (``asyncio.wait_for`` before 3.12 runs the
call in a task of its own, which lets every caller go before the first answer is seen).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or ``asyncio.TimeoutError`` once ``seconds`` have passed."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
