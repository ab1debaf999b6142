"""The state's write-ahead log is copied into its database away from the event loop (#15): SQLite's own
automatic checkpoint, made by the committing connection (the runner's, on its loop) every 1,000 pages,
held the loop for up to 4 s on a busy disk at 6,000 creates a minute."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from runner_harness import base_jobs, run, simulator

from flux_batch.errors import DiskFullError
from flux_batch.runner.state import store as store_module
from flux_batch.runner.state.store import STATE_FILE, Store
from flux_batch.simulator import SimConfig

PAGE = 4096
VALUE = "x" * 3000  # a commit of a page or so


def sizes(folder: Path) -> tuple[int, int]:
    """The database file's size and its write-ahead log's."""
    db = folder / STATE_FILE
    wal = folder / f"{STATE_FILE}-wal"
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


def test_inside_the_writing_connection_leaves_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        with store.log_checkpoints_elsewhere() as checkpoint_log:
            before = sizes(tmp_path)
            for i in range(1500):
                store.set_meta(f"k{i}", VALUE)
            db, wal = sizes(tmp_path)
            assert db == before[0]  # the committing connection copied nothing into the database
            assert wal > 1500 * PAGE  # past SQLite's automatic checkpoint (1,000 pages), never made
            checkpoint_log()
            assert sizes(tmp_path)[0] > db  # copied, by the checkpointer's own connection
            for i in range(100):
                store.set_meta(f"k{i}", VALUE)
            assert sizes(tmp_path)[1] == wal  # the log is written again from its start, not grown
        for i in range(1500):  # outside, the connection checkpoints by itself again
            store.set_meta(f"again{i}", VALUE)
        assert sizes(tmp_path)[0] > sizes(tmp_path)[1] // 4 + db
    finally:
        store.close()
    assert not (tmp_path / f"{STATE_FILE}-wal").exists()  # the last connection closed: all copied


def test_a_checkpoint_that_fails_says_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path)
    real = store_module.connect

    def full_disk(path: Path, **kw: object) -> object:
        db = real(path, **kw)  # type: ignore[arg-type]

        class Full:
            def execute(self, sql: str) -> object:
                if "checkpoint" in sql:
                    raise store_module.sqlite3.OperationalError("database or disk is full")
                return db.execute(sql)

            def close(self) -> None:
                db.close()

        return Full()

    monkeypatch.setattr(store_module, "connect", full_disk)
    try:
        with (
            store.log_checkpoints_elsewhere() as checkpoint_log,
            pytest.raises(DiskFullError, match="free some space"),
        ):
            checkpoint_log()
    finally:
        store.close()


@pytest.mark.slow
async def test_during_a_run_only_the_checkpointer_copies_the_log_and_keeps_it_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 jobs at 6,000 creates a minute: between two of the checkpointer's copies the database file
    never changes (the loop's connection copied nothing), and the log stays about half a second of
    commits (a job writes about 14 pages of 4 KB over its transactions)."""
    copies = [0]
    real = Store.log_checkpoints_elsewhere

    def counted(self: Store):  # type: ignore[no-untyped-def]
        manager = real(self)
        checkpoint_log = manager.__enter__()

        def copy() -> None:
            copies[0] += 1
            checkpoint_log()

        class Counted:
            def __enter__(self) -> object:
                return copy

            def __exit__(self, *exc: object) -> object:
                return manager.__exit__(*exc)

        return Counted()

    monkeypatch.setattr(Store, "log_checkpoints_elsewhere", counted, raising=False)
    samples: list[tuple[int, int, int]] = []

    def sample(*_: object) -> None:
        if (tmp_path / STATE_FILE).exists():
            samples.append((copies[0], *sizes(tmp_path)))

    sim = simulator(SimConfig(latency=1.0, create_rpm=6000, burst=100))
    jobs = base_jobs(2000)
    result = await sim.clock.drive(
        run(sim, jobs, tmp_path, create_rpm=6000, thumbnails=False, on_event=sample)
    )
    assert result.counts == {"succeeded": 2000}
    assert copies[0] >= 10
    during = [s for s in samples if s[2] > 0]
    assert len(during) > 2000
    for (copies_a, db_a, _), (copies_b, db_b, _) in itertools.pairwise(during):
        if copies_a == copies_b:
            assert db_b == db_a, "the database file changed with no checkpoint of the checkpointer's"
    largest = max(wal for _, _, wal in during)
    assert largest < 2000 * PAGE, f"the log grew to {largest / 2**20:.1f} MiB"
