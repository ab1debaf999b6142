"""The memory of all of a run's processes together (docs/benchmarks.md, "The run's processes together"):
its tables' child is not running while nothing is written, its checkpoints leave metadata.parquet to its
end, its image workers are gone before its final tables, and its last images are helped by a process, not
by the run's own threads (whose imports would stay with the run for its final tables and report). That a
checkpoint does not load pyarrow: tests/test_tables_process.py."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from export_folder import build_folder
from runner_harness import base_jobs, run, simulator
from test_runner_image_work import _killed_before_its_images_were_done, _outputs

from flux_batch.errors import EXIT_OK
from flux_batch.outputs import derived
from flux_batch.outputs.snapshot import TableProcess
from flux_batch.runner.image_work import HELP_FROM, ImageWork
from flux_batch.runner.state.store import Store

pytestmark = pytest.mark.slow  # spawned processes: a few seconds each


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def test_a_run_ends_its_tables_child_and_image_workers_before_its_final_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flux_batch.runner.session.TABLES_IN_CHILD", True)
    monkeypatch.setattr("flux_batch.runner.session.IMAGE_WORKERS_KEPT", False, raising=False)
    workers: set[int] = set()
    at_end: dict[str, Any] = {}
    writes: list[tuple[bool, bool]] = []  # (metadata.parquet written, the image workers gone)
    real_write = TableProcess.write

    def write(self: TableProcess, out_dir: Path, **kwargs: Any) -> Any:
        workers.update(getattr(derived._POOL, "_processes", None) or {})
        writes.append((kwargs.get("parquet", True), all(_gone(pid) for pid in workers)))
        return real_write(self, out_dir, **kwargs)

    def on_end() -> None:  # the jobs are over: the run's last images and its final tables are to come
        workers.update(getattr(derived._POOL, "_processes", None) or {})
        at_end["children"] = {p.pid for p in multiprocessing.active_children()} - workers

    monkeypatch.setattr(TableProcess, "write", write)
    sim = simulator()
    result = await run(sim, base_jobs(40), tmp_path, checkpoint_every_s=0.2, on_end=on_end)
    assert result.exit_code == EXIT_OK and result.images == 40
    assert workers  # the images were made in worker processes
    checkpoints, final = writes[:-1], writes[-1]
    assert checkpoints and not any(parquet for parquet, _ in checkpoints)  # manifest.csv only
    assert at_end["children"] == set()  # no tables' child waits through the run's last images
    assert final == (True, True)  # metadata.parquet, with the image workers gone
    assert (tmp_path / "metadata.parquet").exists()


def test_a_run_s_last_images_are_helped_by_a_process_not_its_threads(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "out", HELP_FROM + 16)
    expected = [(name, phash, flags) for name, phash, flags, _ in _outputs(folder.out)]
    _killed_before_its_images_were_done(folder.out)
    here = derived.cpu_s

    async def end_of_run() -> None:
        store = Store.open(folder.out)
        try:
            work = ImageWork(store, folder.out)
            assert work.load_unknown() == HELP_FROM + 16
            await work.drain()
            work.close()
        finally:
            store.close()

    try:
        asyncio.run(end_of_run())
        assert getattr(derived, "_HELPER", None) is not None  # a helper process was started
    finally:
        getattr(derived, "end_shared_pool", lambda: None)()
    assert derived.cpu_s == here  # no image was made in this process's threads
    assert [(name, phash, flags) for name, phash, flags, _ in _outputs(folder.out)] == expected
