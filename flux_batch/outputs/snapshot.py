"""The run's tables written from one snapshot of its state, in a process of their own.

:func:`write_snapshot` rewrites ``manifest.csv`` and ``metadata.parquet`` (or ``manifest.csv`` alone) from
one read transaction of the folder's state and returns what the run's summary takes from that same
snapshot (counts, spend, images, the quality tally). :class:`TableProcess` calls it in a spawned child
process, started at the run's first checkpoint and kept for the next ones, which rewrite ``manifest.csv``
alone; it ends when the jobs are over. The final tables, both files, are written by a new child once the
run's last images are made and its image workers are gone, and it ends before the report is written. So
pyarrow is loaded only for the final tables, in a process that is then the run's only other one (but
multiprocessing's small resource tracker), and without pandas (:func:`_pyarrow_without_numpy`): the run's
processes together peak lower (docs/benchmarks.md, "The run's processes together").

Why a process: pyarrow's import and first Parquet write leave about 90 MB with the process that makes it (its
libraries, and pandas with numpy, which its ``pa.array`` imports to check its input: about 50 MB of it), and a
process's memory only ever grows to its peak. Written in the run's own process, the tables put that on top of
the running run for its whole length, and the report on top of both at its end. In a child, it leaves with the
child. The child is spawned like the image workers (:func:`flux_batch.outputs.derived. new_pool`: a blank
``__main__``, so a user's unguarded script is not run again, and it exits when the run does, killed too), and
ignores SIGINT: Ctrl-C reaches the whole process group, and the run decides what an interrupt means. Files are
replaced atomically (temporary name, fsync, rename), so a child killed mid-write leaves the last complete
tables in place. Ctrl-C during the run's end (a KeyboardInterrupt in the run's process, since the jobs are
over) stops the child's write at once: the next run writes the tables.

Errors come back as they were raised (a full disk as :class:`flux_batch.errors.DiskFullError`). A child
that cannot be started or that dies (killed, out of memory) costs only the memory: the tables are then
written in the run's own process, so they are never missing.
"""

from __future__ import annotations

import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_batch.errors import storage_error
from flux_batch.jobs.status import fold_counts
from flux_batch.outputs.quality import Tally
from flux_batch.outputs.tables import write_tables
from flux_batch.runner.state.store import Store


@dataclass(frozen=True)
class Snapshot:
    """What one write of the tables saw: live jobs by public status, spend, rows, images, quality tally."""

    counts: dict[str, int]
    spent_usd: float
    rows: int
    images: int
    quality: dict[str, Any]


def write_snapshot(out_dir: str, parquet: bool = True) -> Snapshot:
    """Rewrite ``out_dir``'s tables from one snapshot of its state (a read-only connection of its own);
    manifest.csv only, without ``parquet`` (pyarrow is then not imported)."""
    if parquet and _IN_CHILD:
        _pyarrow_without_numpy()
    folder = Path(out_dir)
    try:
        reader = Store.reader(folder)
        try:
            with reader.snapshot():
                counts = fold_counts(*reader.counts().values())
                spent = reader.spent_usd()
                tally = Tally()
                rows, images = write_tables(reader, folder, tally, parquet=parquet)
        finally:
            reader.close()
    except OSError as exc:
        raise storage_error(exc, f"writing the tables in {folder}") from exc
    return Snapshot(counts, spent, rows, images, tally.summary())


#: Whether this process is a run's tables' child (set by its start).
_IN_CHILD = False


def _pyarrow_without_numpy() -> None:
    """Import pyarrow without numpy, in the tables' child. ``pa.array``, which makes each column of
    metadata.parquet, first asks whether its input is a pandas object, and so imports pandas (and numpy)
    when they are installed: about 50 MB that writing the tables never uses (a 3,000-row write peaked at
    144 MB with them, 90 MB without; the same bytes written). pyarrow goes without numpy since version 16;
    an older one, which needs it, is imported with it."""
    if "pyarrow" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # ``import numpy`` raises ImportError
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # a pyarrow that needs numpy
        del sys.modules["numpy"]


def _child_setup(parent: int) -> None:
    """In the child: Ctrl-C is the run's to handle; exit when the run's process ends."""
    global _IN_CHILD
    from flux_batch.outputs.derived import _exit_with

    _IN_CHILD = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(parent)


class TableProcess:
    """Writes a run's tables in one child process: ``write(out_dir)`` returns the :class:`Snapshot`;
    ``close()`` ends the child. ``in_child=False`` writes in this process (as after a child's failure)."""

    def __init__(self, *, in_child: bool = True) -> None:
        self._in_child = in_child
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the child (at the first write, unless called before). A run starts it at its first
        checkpoint, in the checkpoint's thread: never during a resume's start-up, where it would take CPU
        from the first creates."""
        if self._in_child and self._pool is None:
            from flux_batch.outputs.derived import _WorkerContext

            try:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=_WorkerContext(),
                    initializer=_child_setup,
                    initargs=(os.getpid(),),
                )
                self._pool.submit(int).result()  # started (a child that cannot start fails here)
            except (OSError, BrokenProcessPool):  # no process to be had: this process writes
                self._fall_back()

    def write(self, out_dir: Path, *, parquet: bool = True) -> Snapshot:
        """Write the tables (manifest.csv only, without ``parquet``), in the child if there is one."""
        self.start()
        if self._pool is not None:
            try:
                return self._pool.submit(write_snapshot, str(out_dir), parquet).result()
            except BrokenProcessPool:  # the child died (killed, out of memory)
                self._fall_back()
            except BaseException:  # Ctrl-C during the run's end: stop at once, the write with it
                self.kill()
                raise
        return write_snapshot(str(out_dir), parquet)

    def kill(self) -> None:
        """End the child now, mid-write if it is writing: its temporary files are never renamed into
        place, so the tables in the folder stay the last complete ones (the next run writes them)."""
        if self._pool is not None:
            for process in list(self._pool._processes.values()):  # no public way to stop a pool's work
                process.kill()
            self._fall_back()

    def _fall_back(self) -> None:
        self._in_child = False
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """End the child (after the write it is doing, if any)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
