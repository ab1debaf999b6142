"""Checkpoints: run beside the event loop, one at a time, spaced by their own duration; a failure is a
notice and the next one is tried."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from flux_batch.errors import FluxBatchError
from flux_batch.runner.checkpoints import CHECKPOINT_SPACING, Checkpoints


def checkpoints(
    now: list[float], checkpoint: Callable[[], None], notices: list[str] | None = None
) -> Checkpoints:
    stopped: list[FluxBatchError] = []
    return Checkpoints(
        checkpoint,
        every_s=5.0,
        clock=lambda: now[0],
        stop=stopped.append,
        notice=(notices if notices is not None else []).append,
    )


async def test_checkpoints_run_beside_the_event_loop_one_at_a_time_spaced_by_their_duration() -> None:
    now = [0.0]
    done: list[float] = []
    release = threading.Event()

    def checkpoint() -> None:  # rewriting the tables of a big folder: 2 s
        done.append(now[0])
        assert release.wait(10), "the checkpoint blocked the event loop"
        now[0] += 2.0

    every = checkpoints(now, checkpoint)
    now[0] = 5.0
    every.maybe()
    every.maybe()  # one is running: no second writer
    await asyncio.sleep(0.05)  # the event loop runs while the checkpoint is in its thread
    release.set()
    running = every.running
    assert running is not None
    await running
    for t in range(8, 2 * CHECKPOINT_SPACING + 20):
        now[0] = float(t)
        every.maybe()
        await every.wait()
    assert done == [5.0, 7.0 + 2.0 * CHECKPOINT_SPACING]


async def test_a_failed_checkpoint_is_a_notice_and_the_next_one_is_tried() -> None:
    now = [0.0]
    calls: list[float] = []
    notices: list[str] = []

    def checkpoint() -> None:
        calls.append(now[0])
        if len(calls) == 1:
            raise OSError(28, "No space left on device")

    every = checkpoints(now, checkpoint, notices)
    for t in (5.0, 10.0):
        now[0] = t
        every.maybe()
        running = every.running
        assert running is not None
        await running
    assert calls == [5.0, 10.0]
    assert notices == ["could not rewrite the run's tables this time: [Errno 28] No space left on device"]
