"""Ctrl-C during a run's end (the last images' checks, the tables, the report: tens of seconds at 100,000
images) stops it at once, with exit code 130, and the next run writes what it left unwritten."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flux_batch.cli import main
from flux_batch.errors import EXIT_INTERRUPTED, EXIT_OK
from flux_batch.runner import session

MANIFEST = """\
version: 1
name: end
stages:
  - id: a
    model: black-forest-labs/flux-schnell
    prompt: "a {x}"
    input: {megapixels: "0.25"}
    matrix: {x: [cat, dog]}
"""


def test_ctrl_c_while_a_run_writes_its_report_stops_it_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest = tmp_path / "out", tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    written: list[str] = []
    real = session.write_report

    def slow_report(out_dir: Path, **options: bool) -> str | None:
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, while the report is being written
        give_up = time.monotonic() + 5
        while time.monotonic() < give_up:
            time.sleep(0.01)
        written.append("all of it")
        return real(out_dir, **options)

    monkeypatch.setattr(session, "write_report", slow_report)
    started = time.monotonic()
    code = main(["run", str(manifest), "--simulator", "--out", str(out), "--quiet"])
    assert code == EXIT_INTERRUPTED and written == []  # was: Ctrl-C ignored, the report written, exit 0
    assert time.monotonic() - started < 30
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as before the run
    passed: list[dict[str, bool]] = []

    def recorded(out_dir: Path, **options: bool) -> str | None:
        passed.append(options)
        return real(out_dir, **options)

    monkeypatch.setattr(session, "write_report", recorded)
    assert main(["run", str(manifest), "--simulator", "--out", str(out), "--quiet"]) == EXIT_OK
    assert passed == [{"make_missing": True}]  # a run that ended: its report makes what is missing
    assert (out / "report.html").is_file() and (out / "manifest.csv").is_file()


def test_an_interrupted_runs_report_makes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flux_batch.runner.executor import Executor

    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    passed: list[dict[str, bool]] = []
    real_report, real_run = session.write_report, Executor.run

    def recorded(out_dir: Path, **options: bool) -> str | None:
        passed.append(options)
        return real_report(out_dir, **options)

    async def interrupted_run(self: Executor) -> object:
        self.interrupt()  # Ctrl-C before the first job
        return await real_run(self)

    monkeypatch.setattr(session, "write_report", recorded)
    monkeypatch.setattr(Executor, "run", interrupted_run)
    code = main(["run", str(manifest), "--simulator", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == EXIT_INTERRUPTED
    assert passed == [{"make_missing": False}]  # its user waits for it to exit: no thumbnail is made
