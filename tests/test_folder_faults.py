"""A full disk, a read-only folder, a damaged or tampered state, a changed image: the runner stops cleanly
in one line with the right exit code, reads and writes nothing outside the folder, and resumes (#9.3,
#9.7, #9.8, #9.10)."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_harness import base_jobs, chain_jobs, run, simulator

from flux_batch.cli import main
from flux_batch.errors import EXIT_INVALID, EXIT_OK, EXIT_STORAGE
from flux_batch.runner import download as download_files
from flux_batch.runner import job_flow as job_flow_module
from flux_batch.runner.state import store as state_module
from flux_batch.simulator import SimConfig

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
QUICKSTART = str(PIPELINES / "quickstart.yaml")


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_files_match(out: Path) -> None:
    done = [r for r in rows(out) if r["file_name"]]
    assert done
    for r in done:
        assert hashlib.sha256((out / r["file_name"]).read_bytes()).hexdigest() == r["sha256"], r["file_name"]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart run once (on the built-in simulator) for the module; copy it with :func:`done_run`."""
    out = tmp_path_factory.mktemp("quickstart") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("flux_batch.api.SIMULATOR_LATENCY_S", 0.01)
        assert main(["run", QUICKSTART, "--simulator", "--out", str(out), "--quiet"]) == EXIT_OK
    return out


def done_run(quickstart_run: Path, out: Path) -> Path:
    shutil.copytree(quickstart_run, out)
    return out


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("flux-batch: error:")]
    assert len(lines) == 1, err
    return lines[0]


class FailingDb:
    """A state connection whose statements matching ``fails(sql)`` raise SQLite's disk-full error."""

    def __init__(self, db: sqlite3.Connection, fails: Callable[[str], bool]) -> None:
        self._db = db
        self._fails = fails
        self.failures = 0

    def _check(self, sql: str) -> None:
        if self._fails(sql):
            self.failures += 1
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


# -- #9.3 a full disk stops the run at once; nothing escapes a job ------------------------------------------


async def test_a_full_disk_at_the_intent_stops_the_run_at_once_and_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intents = [0]

    def full_after_five(sql: str) -> bool:
        if sql.startswith("INSERT INTO attempts"):
            intents[0] += 1
            return intents[0] > 5
        return False

    opened: list[FailingDb] = []
    real_connect = state_module.connect

    def connect(path: Path, *, readonly: bool = False) -> Any:
        db = real_connect(path, readonly=readonly)
        if readonly:
            return db
        opened.append(FailingDb(db, full_after_five))
        return opened[-1]

    monkeypatch.setattr(state_module, "connect", connect)
    sim = simulator()
    jobs = base_jobs(12)
    result = await run(sim, jobs, tmp_path, max_in_flight=4)  # was: 446 attempts in 45 s, never ending
    assert result.exit_code == EXIT_STORAGE
    assert "no space left" in str(result.result.fatal)
    assert opened[0].failures <= 4  # each job in flight tried once, then the run stopped
    monkeypatch.setattr(state_module, "connect", real_connect)  # space freed
    again = await run(sim, jobs, tmp_path)
    assert again.exit_code == EXIT_OK and again.counts == {"succeeded": 12}
    assert sim.stats()["duplicate_predictions"] == 0 and sim.stats()["predictions_created"] == 12
    assert_files_match(tmp_path)


async def test_a_full_disk_while_writing_an_image_stops_the_run_and_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flux_batch.runner import download as download_module

    real_seal = download_module._seal
    sealed = [0]

    def seal(*args: Any) -> Any:
        sealed[0] += 1
        if sealed[0] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_seal(*args)

    monkeypatch.setattr(download_module, "_seal", seal)
    sim = simulator()
    jobs = base_jobs(12)
    result = await run(sim, jobs, tmp_path, max_in_flight=3)
    assert result.exit_code == EXIT_STORAGE and "no space left" in str(result.result.fatal)
    assert sim.stats()["predictions_created"] <= 6  # stopped at once, not after creating all 12
    monkeypatch.setattr(download_module, "_seal", real_seal)
    again = await run(sim, jobs, tmp_path)
    assert again.counts == {"succeeded": 12}
    assert sim.stats()["duplicate_predictions"] == 0 and sim.stats()["predictions_created"] == 12
    assert_files_match(tmp_path)


async def test_an_unexpected_exception_leaves_the_job_recorded_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = job_flow_module.JobFlow._record_end
    calls = [0]

    def record_end(self: Any, job: Any, prediction: Any, **kw: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyError("a defect")
        real(self, job, prediction, **kw)

    monkeypatch.setattr(job_flow_module.JobFlow, "_record_end", record_end)
    sim = simulator()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        result = await run(sim, base_jobs(6), tmp_path, max_in_flight=2)
    assert "never retrieved" not in caplog.text
    assert result.counts.get("succeeded") == 5 and sum(result.counts.values()) == 6
    assert result.result.stats.unfinished == 1  # left for the next run, and said so
    store = state_module.Store.open(tmp_path)
    try:
        assert any("KeyError" in message for _, _, message in store.recent_errors())
    finally:
        store.close()
    monkeypatch.setattr(job_flow_module.JobFlow, "_record_end", real)
    again = await run(sim, base_jobs(6), tmp_path)
    assert again.counts == {"succeeded": 6} and sim.stats()["predictions_created"] == 6


async def test_a_full_disk_during_the_first_setup_leaves_nothing_a_later_run_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flux_batch.runner.state import migrations

    def full(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    steps = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", (steps[0], full, *steps[2:]))
    sim = simulator()
    with pytest.raises(Exception, match="no space left") as info:
        await run(sim, base_jobs(2), tmp_path)
    assert getattr(info.value, "exit_code", None) == EXIT_STORAGE
    assert not (tmp_path / "state.db").exists()  # no half-made state for later runs to trip on
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    again = await run(sim, base_jobs(2), tmp_path)
    assert again.counts == {"succeeded": 2}


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str) -> Iterator[Callable[[str], None]]:
    """A tmpfs of ``size`` mounted on ``folder`` (root only); yields a function that resizes it."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "flux-batch-test", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("needs permission to mount a tmpfs (root)")

    def resize(new: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new}", str(folder)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_disk_that_fills_during_the_first_setup_on_a_real_filesystem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tiny_disk(tmp_path / "disk", "24k") as resize:
        out = tmp_path / "disk" / "out"
        assert main(["run", QUICKSTART, "--simulator", "--out", str(out), "--quiet"]) == EXIT_STORAGE
        assert "no space left" in one_error_line(capsys.readouterr().err)
        resize("64m")
        # Was: "cannot read the state (no such table: jobs)" on every later run.
        assert main(["run", QUICKSTART, "--simulator", "--out", str(out), "--quiet"]) == EXIT_OK


@pytest.mark.slow
async def test_a_disk_that_fills_mid_run_on_a_real_filesystem(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "320k") as resize:
        out = tmp_path / "disk" / "out"
        sim = simulator(SimConfig(latency=1.0))
        jobs = base_jobs(40)
        result = await run(sim, jobs, out, max_in_flight=4)
        assert result.exit_code == EXIT_STORAGE and "no space left" in str(result.result.fatal)
        resize("64m")
        again = await run(sim, jobs, out)
        assert again.exit_code == EXIT_OK and again.counts == {"succeeded": 40}
        assert sim.stats()["duplicate_predictions"] == 0 and sim.stats()["predictions_created"] == 40
        assert_files_match(out)


# -- #9.8 folders that cannot be used: one line, the right exit code ----------------------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only even for root (the immutable attribute), or by its mode otherwise."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip("root cannot make a folder read-only here (no chattr)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_run_and_report_into_a_read_only_folder_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quickstart_run: Path
) -> None:
    out = done_run(quickstart_run, tmp_path / "out")
    (out / "report.html").unlink()
    for grid in out.glob("grid_*.png"):
        grid.unlink()
    capsys.readouterr()
    with read_only(out):
        assert main(["report", str(out)]) == EXIT_STORAGE
        assert "cannot write" in one_error_line(capsys.readouterr().err)
    with read_only(tmp_path):
        code = main(["run", QUICKSTART, "--simulator", "--out", str(tmp_path / "new"), "--quiet"])
        assert code == EXIT_STORAGE
        assert "cannot write" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("where", ["a file", "under /proc"])
def test_an_out_that_cannot_be_a_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    out = tmp_path / "file.txt"
    out.write_text("not a folder")
    if where == "under /proc":
        out = Path("/proc/flux-batch-test/out")
    assert main(["run", QUICKSTART, "--simulator", "--out", str(out), "--quiet"]) == EXIT_INVALID
    assert str(out) in one_error_line(capsys.readouterr().err)


def _flip_pages(db: Path) -> None:
    """Flip every bit of the page holding the outputs table (the schema on the first page stays readable,
    so the damage is met only when outputs are read: by the run, after plan has read the jobs)."""
    con = sqlite3.connect(db)
    size = con.execute("PRAGMA page_size").fetchone()[0]
    found = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outputs'")
    roots = [page for (page,) in found]
    con.close()
    data = bytearray(db.read_bytes())
    for page in roots:
        for at in range((page - 1) * size, page * size):
            data[at] ^= 0xFF
    db.write_bytes(bytes(data))


def _sql(statement: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        con = sqlite3.connect(db)
        con.execute(statement)
        con.commit()
        con.close()

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        _flip_pages,
        _sql("DROP TABLE outputs"),
        _sql("UPDATE jobs SET input = '{not json' WHERE rowid = 3"),
        _sql("UPDATE jobs SET prediction_id = '../../account', status = 'running' WHERE rowid = 2"),
    ],
    ids=["flipped pages", "dropped table", "bad JSON", "bad prediction id"],
)
def test_a_damaged_state_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None], quickstart_run: Path
) -> None:
    out = done_run(quickstart_run, tmp_path / "out")
    damage(out / "state.db")
    capsys.readouterr()
    assert main(["run", QUICKSTART, "--simulator", "--out", str(out), "--quiet"]) == EXIT_INVALID
    line = one_error_line(capsys.readouterr().err)  # was: a traceback and exit 1 ("some jobs failed")
    assert "state" in line and ("damaged" in line or "not a JSON" in line)


# -- #9.7 paths read back from the state or the CSV stay inside the folder ----------------------------------


def _tamper(out: Path, statement: str, *args: Any) -> None:
    con = sqlite3.connect(out / "state.db")
    con.execute(statement, args)
    con.commit()
    con.close()


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
async def test_a_tampered_file_name_in_the_state_is_never_followed(tmp_path: Path, how: str) -> None:
    from flux_batch.report import write_report

    out, outside = tmp_path / "out", tmp_path / "outside"
    sim = simulator()
    jobs = base_jobs(3)
    await run(sim, jobs, out)
    outside.mkdir()
    victim = outside / "victim.png"
    first = rows(out)[0]
    victim.write_bytes((out / first["file_name"]).read_bytes())
    name = str(victim) if how == "absolute" else os.path.relpath(victim, out)
    _tamper(out, "UPDATE outputs SET file_name = ? WHERE job_id = ?", name, first["job_id"])
    again = await run(sim, jobs, out)
    write_report(out)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.png"]  # no thumbnail written beside it
    assert again.counts == {"succeeded": 3} and sim.stats()["predictions_created"] == 3
    assert all(not os.path.isabs(r["file_name"]) and ".." not in r["file_name"] for r in rows(out))
    assert_files_match(out)  # the job's own image was fetched again, inside the folder


async def test_a_tampered_upstream_file_is_never_uploaded(tmp_path: Path) -> None:
    out, secret = tmp_path / "out", tmp_path / "secret.txt"
    secret.write_bytes(b"TOKEN=r8_do_not_send_me")
    sim = simulator(SimConfig(latency=1.0, retention=30.0))
    jobs = chain_jobs(2)
    bases = [j for j in jobs if j[0].stage == "base"]
    await run(sim, bases, out, retention_s=30.0, freshness_margin_s=5.0)
    base_id = bases[0][0].id
    _tamper(out, "UPDATE outputs SET file_name = ? WHERE job_id = ?", str(secret), base_id)
    sim.clock.now += 3600  # the base outputs' URLs are gone: the edit needs the local file
    result = await run(sim, jobs, out, retention_s=30.0, freshness_margin_s=5.0)
    uploaded = [f.data for f in sim.app.store.files.values()]
    assert all(b"r8_do_not_send_me" not in data for data in uploaded)
    assert result.counts == {"succeeded": 4}
    assert result.summary["recreated"] == 1  # the base whose file was unusable, its output gone at the API


def test_a_tampered_csv_never_makes_the_report_touch_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quickstart_run: Path
) -> None:
    out, outside = done_run(quickstart_run, tmp_path / "out"), tmp_path / "outside"
    outside.mkdir()
    table = rows(out)
    (outside / "a.png").write_bytes((out / table[0]["file_name"]).read_bytes())
    table[0]["file_name"] = str(outside / "a.png")
    table[1]["file_name"] = "../outside/a.png"
    with (out / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    assert main(["report", str(out)]) == EXIT_OK
    assert sorted(p.name for p in outside.iterdir()) == ["a.png"]


# -- #9.10 an image changed after it was recorded is noticed on resume ---------------------------------------


async def test_an_image_overwritten_after_it_was_recorded_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator()
    jobs = base_jobs(4)
    await run(sim, jobs, tmp_path)
    table = rows(tmp_path)
    same_size = tmp_path / table[0]["file_name"]
    same_size.write_bytes(b"\0" * same_size.stat().st_size)  # garbage, same size, a new mtime
    (tmp_path / table[1]["file_name"]).write_bytes(b"garbage")
    again = await run(sim, jobs, tmp_path)
    assert again.counts == {"succeeded": 4} and sim.stats()["predictions_created"] == 4
    assert again.summary["api_calls"]["download"] == 2
    assert_files_match(tmp_path)  # was: the garbage kept, under the old sha256

    hashed: list[Path] = []
    real = download_files._sha256_of

    def counting(path: Path) -> str | None:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(download_files, "_sha256_of", counting)
    await run(sim, jobs, tmp_path)
    assert hashed == []  # unchanged files: size and mtime only, nothing read
    touched = tmp_path / table[2]["file_name"]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    await run(sim, jobs, tmp_path)
    await run(sim, jobs, tmp_path)
    assert hashed == [touched]  # hashed once, found the same, its new mtime recorded
    assert sim.stats()["predictions_created"] == 4


async def test_resume_finds_gone_files_by_one_walk_of_the_images_folder(tmp_path: Path) -> None:
    from flux_batch.runner.download import reopen_missing_files
    from flux_batch.runner.state.store import Store

    sim = simulator()
    jobs = base_jobs(5)
    await run(sim, jobs, tmp_path)
    table = rows(tmp_path)
    gone, folder, elsewhere = (tmp_path / table[i]["file_name"] for i in range(3))
    gone.unlink()
    folder.unlink()
    folder.mkdir()  # a folder where the image was
    moved = tmp_path / "old-layout.jpg"  # a name outside images/, as an older layout had it
    os.replace(elsewhere, moved)
    _tamper(tmp_path, "UPDATE outputs SET file_name = ? WHERE job_id = ?", moved.name, table[2]["job_id"])
    store = Store.open(tmp_path)
    try:
        assert reopen_missing_files(store, tmp_path) == 2
        reopened = {j for j, s in store._db.execute("SELECT id, status FROM jobs") if s == "downloading"}
    finally:
        store.close()
    assert reopened == {table[0]["job_id"], table[1]["job_id"]}
