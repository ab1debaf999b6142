"""What is made from a downloaded image once it is safe on disk: its thumbnail and its quality values
(perceptual hash and flags, :mod:`flux_batch.outputs.quality`), from one decode.

:func:`derive` does one image, in whatever process calls it (a worker's, usually). The run hands images to
the worker processes of :func:`shared_pool` as they are downloaded (:mod:`flux_batch.runner.image_work`);
the report, for a folder whose images were never done (a killed run), makes what it lacks with
:func:`derive_in_order`, on every core.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from flux_batch.outputs.safepath import inside

T = TypeVar("T")
#: Images handed to each worker process ahead of the one it is working on.
AHEAD_PER_WORKER = 4
#: Below this many images to do, the report does them itself: starting processes would cost more.
POOL_FROM = 16
#: How much lower the worker processes' scheduling priority is than the process that starts them
#: (``os.nice``). A run's pace (its creates, the API's answers) comes first; its images are made in the CPU
#: left over, and a run that ends waits for the last of them. On 2 cores, the runner, a simulator beside it
#: and a worker at one priority wait for each other's time slices; niced, the worker takes what the other
#: two leave (docs/benchmarks.md: at a load of 11 that was too little to show a faster pace).
WORKER_NICENESS = 10


@dataclass(frozen=True)
class Derived:
    """What a worker made: the thumbnail's path (None without one), the image's hash and flags."""

    thumb: str | None
    phash: str | None
    flags: str
    error: str | None = None


#: CPU seconds :func:`derive` has spent in this process, threads included (what a run's own process gave
#: to its images, apart from its worker processes').
cpu_s = 0.0
_cpu_lock = threading.Lock()


def derive(out_dir: str, file_name: str, thumbnails: bool) -> Derived | None:
    """Decode ``out_dir/file_name`` once for its quality values and (with ``thumbnails``) its thumbnail.
    None when the file cannot be read (gone or moved: the next run's check of the folder finds it)."""
    global cpu_s
    started = time.thread_time()
    try:
        return _derive(out_dir, file_name, thumbnails)
    finally:
        with _cpu_lock:
            cpu_s += time.thread_time() - started


def _derive(out_dir: str, file_name: str, thumbnails: bool) -> Derived | None:
    from flux_batch.outputs import quality
    from flux_batch.report.thumbnails import THUMB_SIZE, save_thumbnail

    folder = Path(out_dir)
    path = inside(folder, file_name)
    try:
        data = path.read_bytes() if path is not None else None
    except OSError:
        data = None
    if data is None:
        return None
    made: list[str] = []
    errors: list[str] = []

    def thumbnail(image: Image.Image) -> None:
        try:
            if image.format == "JPEG":  # decoding again at a quarter scale costs less than shrinking this
                with Image.open(io.BytesIO(data)) as small:
                    small.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
                    made.append(save_thumbnail(small, folder, file_name))
            else:
                made.append(save_thumbnail(image, folder, file_name))
        except Exception as exc:  # a thumbnail is a convenience: its failure never loses the quality
            errors.append(f"thumbnail for {file_name} failed: {exc}")

    found = quality.inspect_image(data, then=thumbnail if thumbnails else None)
    return Derived(made[0] if made else None, found.phash, found.flag_text, errors[0] if errors else None)


def workers() -> int:
    """Worker processes: one core is left to the runner (and the simulator beside it, if any)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


_POOL: ProcessPoolExecutor | None = None


def new_pool(n: int, *, niceness: int = WORKER_NICENESS) -> ProcessPoolExecutor:
    """``n`` worker processes, started fresh (spawn: never forked from the runner with its threads), at a
    lower priority (``niceness``, :data:`WORKER_NICENESS` unless told), each exiting when the process that
    started it does (killed, too). Not a fork server: it keeps a socket in
    a ``pymp-*`` folder under TMPDIR that a killed run would leave behind; spawn writes nothing there."""
    return ProcessPoolExecutor(
        max_workers=n,
        mp_context=_WorkerContext(),
        initializer=_start_worker,
        initargs=(os.getpid(), niceness),
    )


class _WorkerProcess(SpawnProcess):
    """A spawned worker that does not import the parent's ``__main__``. multiprocessing runs the
    parent's main script again in every spawned child; a user's script calling ``flux_batch.run``
    without an ``if __name__ == "__main__":`` guard would start a whole second run in each worker (a paid
    one, if its folder differs), and ``python -m flux_batch`` would run its command again. The workers
    need nothing of ``__main__``: their functions live in this module."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")  # no file, no spec: nothing to re-run
        try:
            return SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _WorkerContext(SpawnContext):
    Process = _WorkerProcess


def _start_worker(pid: int, niceness: int = WORKER_NICENESS) -> None:
    """A worker's start: below its parent's priority (by ``niceness``), and gone with it."""
    if niceness:
        with contextlib.suppress(AttributeError, OSError):  # not on this platform, or not allowed
            os.nice(niceness)
    _exit_with(pid)


def _exit_with(pid: int) -> None:
    """In a worker: exit as soon as process ``pid`` ends. A pool's workers wait for work on a pipe they
    hold both ends of, so they would outlive a killed run forever."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)  # Linux: readable once the process has ended
        except (AttributeError, OSError):
            while _alive(pid):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="flux-batch-watch-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal: it is there
        pass
    return True


def shared_pool() -> ProcessPoolExecutor:
    """The process's pool for runs, started at its first use and kept for the next runs (processes
    started for each run would cost a short run more than its images)."""
    global _POOL
    if _POOL is None:
        _POOL = new_pool(workers())
    return _POOL


_HELPER: ProcessPoolExecutor | None = None


def helper_pool() -> ProcessPoolExecutor:
    """One more worker process, at the run's own priority, for a run's last images: once its jobs are
    over, the run's process is idle, and the niced workers alone would be starved on a busy machine. A
    process rather than the run's own threads: the images' libraries (numpy and scipy for the hash, about
    36 MB) then never load in the run's process, which writes its report after its final tables."""
    global _HELPER
    if _HELPER is None:
        _HELPER = new_pool(1, niceness=0)
    return _HELPER


def end_shared_pool() -> None:
    """End the worker processes of :func:`shared_pool` and :func:`helper_pool` (after the work given to
    them), so that their memory is gone before what comes next (a run's final tables, its report); the
    next use starts them again."""
    global _POOL, _HELPER
    pools, _POOL, _HELPER = (_POOL, _HELPER), None, None
    for pool in pools:
        if pool is not None:
            pool.shutdown(wait=True)


def drop_pool(pool: Executor) -> None:
    """``pool`` is broken: shut it (and make the next :func:`shared_pool` or :func:`helper_pool` a new one
    if it was that)."""
    global _POOL, _HELPER
    if _POOL is pool:
        _POOL = None
    if _HELPER is pool:
        _HELPER = None
    pool.shutdown(wait=False, cancel_futures=True)


_THREADS: Executor | None = None


def threads() -> Executor:
    """Threads of this process, for when worker processes cannot be had, or this process is idle."""
    global _THREADS
    if _THREADS is None:
        from concurrent.futures import ThreadPoolExecutor

        _THREADS = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="flux-batch-images")
    return _THREADS


def derive_in_order(
    out_dir: Path, items: Iterable[T], name_of: Callable[[T], str | None], *, thumbnails: bool = True
) -> Iterator[tuple[T, Derived | None]]:
    """Each of ``items`` with what :func:`derive` made of the image ``name_of(item)`` names (None: no
    image named, or it cannot be read), in order. Past :data:`POOL_FROM` images, on a worker process per
    core, a few images ahead of the one yielded (memory stays small for any number of items)."""
    folder = str(out_dir)
    pool: ProcessPoolExecutor | None = None
    window = (os.cpu_count() or 1) * AHEAD_PER_WORKER * 8
    ahead: deque[tuple[T, str | None, Future[Derived | None] | None]] = deque()
    done = 0

    def result(name: str | None, future: Future[Derived | None] | None) -> Derived | None:
        if name is None:
            return None
        try:
            if future is not None:
                return future.result()
        except Exception:  # a worker died (killed, out of memory): this image is done here instead
            pass
        return derive(folder, name, thumbnails)

    try:
        for item in items:
            name = name_of(item)
            if name is not None and done >= POOL_FROM:
                pool = pool or new_pool(os.cpu_count() or 1)
                ahead.append((item, name, pool.submit(derive, folder, name, thumbnails)))
            else:
                done += name is not None
                ahead.append((item, name, None))
            while ahead and (ahead[0][2] is None or ahead[0][2].done() or len(ahead) > window):
                first, first_name, future = ahead.popleft()
                yield first, result(first_name, future)
        while ahead:
            first, first_name, future = ahead.popleft()
            yield first, result(first_name, future)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
