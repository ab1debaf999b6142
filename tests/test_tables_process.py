"""A run's tables written in a child process (flux_batch.outputs.snapshot): the same files and figures as
written in the run's own process, errors as flux-batch's errors, a dead child costing nothing but memory,
Ctrl-C left to the run, the run's own process never loading pyarrow (its memory stays with the child), and
the child loading it only for the final tables (a checkpoint rewrites manifest.csv alone).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_folder import build_folder

from flux_batch.errors import DiskFullError, StorageError
from flux_batch.outputs.snapshot import TableProcess, write_snapshot

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # spawned processes: a few seconds each


@pytest.fixture
def tables() -> Iterator[TableProcess]:
    process = TableProcess()
    try:
        yield process
    finally:
        process.close()


def _child(tables: TableProcess) -> int:
    tables.start()
    pool = tables._pool
    assert pool is not None
    pool.submit(int).result()  # started
    (pid,) = pool._processes
    return pid


def test_the_child_writes_the_tables_the_run_s_process_would(tmp_path: Path, tables: TableProcess) -> None:
    build_folder(tmp_path, 300, blank=3, duplicates=2, tables=False)
    here = write_snapshot(str(tmp_path))
    csv, parquet = (tmp_path / "manifest.csv").read_bytes(), pq.read_table(tmp_path / "metadata.parquet")
    (tmp_path / "manifest.csv").unlink()
    (tmp_path / "metadata.parquet").unlink()
    there = tables.write(tmp_path)
    assert there == here
    assert (there.rows, there.images, there.counts) == (300, 300, {"succeeded": 300})
    assert there.quality["flagged"] == 3 and there.quality["near_duplicates"] == 2
    assert (tmp_path / "manifest.csv").read_bytes() == csv
    assert pq.read_table(tmp_path / "metadata.parquet").equals(parquet)
    assert tables._pool is not None  # written in the child, not in this process after a failure


def test_a_checkpoint_rewrites_manifest_csv_without_loading_pyarrow(
    tmp_path: Path, tables: TableProcess
) -> None:
    build_folder(tmp_path, 30, tables=False)
    seen = tables.write(tmp_path, parquet=False)
    assert (seen.rows, seen.images) == (30, 30)
    assert len((tmp_path / "manifest.csv").read_text().splitlines()) == 31
    assert not (tmp_path / "metadata.parquet").exists()
    assert tables._pool is not None  # written in the child
    assert tables._pool.submit(eval, "'pyarrow' in __import__('sys').modules").result() is False

    tables.write(tmp_path)  # the final tables: both, without pandas (pyarrow would import it: 50 MB)
    assert pq.read_table(tmp_path / "metadata.parquet").num_rows == 30
    loaded = "[m in __import__('sys').modules for m in ('pyarrow', 'pandas')]"
    assert tables._pool.submit(eval, loaded).result() == [True, False]


def test_an_error_in_the_child_comes_back_as_a_storage_error(tmp_path: Path, tables: TableProcess) -> None:
    build_folder(tmp_path, 20, tables=False)
    (tmp_path / ".manifest.csv.tmp").mkdir()  # the table's temporary file cannot be made
    with pytest.raises(StorageError, match="writing the tables"):
        tables.write(tmp_path)
    assert not (tmp_path / "manifest.csv").exists()


def test_a_full_disk_in_the_child_is_a_disk_full_error(tmp_path: Path) -> None:
    build_folder(tmp_path, 400, tables=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The child, started now, inherits it: room for the state's shared-memory file (32 kB), not the table.
    resource.setrlimit(resource.RLIMIT_FSIZE, (36_000, hard))
    tables = TableProcess()
    try:
        tables.start()
        with pytest.raises(DiskFullError, match="no space left"):
            tables.write(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        tables.close()
    assert not (tmp_path / "manifest.csv").exists()  # no half-written table in its place


def test_a_child_that_dies_leaves_the_tables_to_the_run_s_process(
    tmp_path: Path, tables: TableProcess
) -> None:
    build_folder(tmp_path, 20, tables=False)
    os.kill(_child(tables), signal.SIGKILL)  # killed, or out of memory
    seen = tables.write(tmp_path)
    assert (seen.rows, seen.images) == (20, 20)
    assert len((tmp_path / "manifest.csv").read_text().splitlines()) == 21
    assert tables._pool is None  # written here, and so are the next ones


def test_ctrl_c_reaching_the_child_is_the_run_s_to_handle(tmp_path: Path, tables: TableProcess) -> None:
    """Ctrl-C reaches the whole process group: the child goes on, the run decides (during the jobs its
    handler marks the run interrupted and the final tables are still written)."""
    build_folder(tmp_path, 20, tables=False)
    os.kill(_child(tables), signal.SIGINT)
    assert tables.write(tmp_path).rows == 20
    assert tables._pool is not None


def test_ctrl_c_during_the_run_s_end_stops_the_child_s_write_at_once(tmp_path: Path) -> None:
    """Since the jobs are over, Ctrl-C in the run's end is a KeyboardInterrupt in the run's process: the
    child's write stops with it, and leaves no table in place (the next run writes them)."""
    build_folder(tmp_path, 20, tables=False)
    os.mkfifo(tmp_path / ".manifest.csv.tmp")  # the child's write blocks on it until it is stopped
    tables = TableProcess()
    pid = _child(tables)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            tables.write(tmp_path)
    finally:
        timer.cancel()
        tables.close()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not (tmp_path / "manifest.csv").exists() and not (tmp_path / "metadata.parquet").exists()


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def test_a_run_s_own_process_never_loads_pyarrow_nor_the_child_the_library_s_api(
    tmp_path: Path,
) -> None:
    """pyarrow's first Parquet write keeps about 90 MB in the process that makes it: a run leaves that
    to its child. The child (like the image workers) imports the package without its API (aiohttp, the
    manifest's loaders): about 40 MB less in each of them."""
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import sys
            import flux_batch
            from flux_batch.outputs.snapshot import TableProcess

            result = flux_batch.run(flux_batch.load({str(ROOT / "pipelines" / "quickstart.yaml")!r}),
                                    out="out", simulator=True)
            print("succeeded", result.counts.get("succeeded"))
            print("pyarrow here", "pyarrow" in sys.modules)

            tables = TableProcess()
            tables.write(flux_batch.api.Path("out"))  # the child's imports, as in a run
            there = tables._pool.submit(eval, "sorted(__import__('sys').modules)").result()
            tables.close()
            print("there", "pyarrow" in there, "aiohttp" in there, "flux_batch.api" in there)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded 12" in done.stdout
    assert "pyarrow here False" in done.stdout, done.stdout
    assert "there True False False" in done.stdout, done.stdout
    assert len((tmp_path / "out" / "manifest.csv").read_text().splitlines()) == 13
    assert pq.read_table(tmp_path / "out" / "metadata.parquet").num_rows == 12
