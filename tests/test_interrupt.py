"""Ctrl-C on a real ``run`` process: once stops submitting and finishes what is in flight (downloads
included); twice stops at once. Either way the exit code is 130 and the next run completes the batch
without creating any prediction twice."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import pytest
from served import simulator_process, simulator_stats, start_run

from flux_batch.errors import EXIT_INTERRUPTED, EXIT_OK

pytestmark = pytest.mark.slow

SUBJECTS = ["fox", "owl", "cat", "boat", "tree", "lighthouse", "kettle", "violin", "comet"]
MANIFEST = """
version: 1
name: interrupt
api: {{base_url: "{base_url}", max_in_flight: 3, wait: 1}}
stages:
  - id: base
    model: black-forest-labs/flux-schnell
    prompt: "a {{subject}}"
    input: {{megapixels: "0.25"}}
    matrix:
      subject: [{subjects}]
"""


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _wait_for_creates(base_url: str, n: int, timeout: float = 30.0) -> None:
    give_up = time.monotonic() + timeout
    while simulator_stats(base_url)["predictions_created"] < n:
        assert time.monotonic() < give_up, "the run created no prediction"
        time.sleep(0.05)


def _write(path: Path, base_url: str, jobs: int) -> Path:
    path.write_text(MANIFEST.format(base_url=base_url, subjects=", ".join(SUBJECTS[:jobs])))
    return path


def _resume_and_check(manifest: Path, out: Path, base_url: str, jobs: int) -> None:
    final = start_run(manifest, out)
    _, err = final.communicate(timeout=120)
    assert final.returncode == EXIT_OK, err.decode()
    assert [r["status"] for r in _rows(out)] == ["succeeded"] * jobs
    stats = simulator_stats(base_url)
    assert stats["duplicate_predictions"] == 0
    assert stats["predictions_created"] == jobs


def _interrupt(
    tmp_path: Path, base_url: str, jobs: int, after_creates: int, presses: int
) -> tuple[Path, Path, float]:
    """Start a run of ``jobs``, press Ctrl-C ``presses`` times once ``after_creates`` predictions exist, and
    wait for it to exit 130. Returns the manifest, the output folder and the seconds it took after the last
    press."""
    manifest = _write(tmp_path / "m.yaml", base_url, jobs)
    out = tmp_path / "out"
    proc = start_run(manifest, out)
    _wait_for_creates(base_url, after_creates)
    for press in range(presses):
        if press:
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err.decode()
    return manifest, out, time.monotonic() - started


def test_one_ctrl_c_finishes_what_is_in_flight(tmp_path: Path) -> None:
    with simulator_process("--latency", "3") as base_url:
        manifest, out, _ = _interrupt(tmp_path, base_url, jobs=9, after_creates=1, presses=1)
        created = simulator_stats(base_url)["predictions_created"]
        assert 1 <= created <= 3  # nothing submitted after Ctrl-C beyond the in-flight cap
        done = [r for r in _rows(out) if r["status"] == "succeeded"]
        assert len(done) == created  # every prediction in flight was waited for and downloaded
        assert all((out / r["file_name"]).is_file() for r in done)
        _resume_and_check(manifest, out, base_url, jobs=9)


def test_two_ctrl_c_stop_at_once_and_stay_resumable(tmp_path: Path) -> None:
    with simulator_process("--latency", "8") as base_url:
        manifest, out, took = _interrupt(tmp_path, base_url, jobs=3, after_creates=3, presses=2)
        assert took < 5  # it did not wait for the 8-second predictions it left running
        assert not [r for r in _rows(out) if r["status"] == "succeeded"]
        _resume_and_check(manifest, out, base_url, jobs=3)


def test_cancel_on_interrupt_cancels_creates_still_held_by_prefer_wait(tmp_path: Path) -> None:
    """With the default --wait 60 the creates are still waiting for their answer at Ctrl-C, so no id is
    known yet: they are given up, found by listing and canceled, within seconds (#10.5)."""
    with simulator_process("--latency", "10") as base_url:
        manifest = tmp_path / "m.yaml"
        held = MANIFEST.replace("wait: 1", "wait: 60")  # the default
        manifest.write_text(held.format(base_url=base_url, subjects=", ".join(SUBJECTS[:3])))
        out = tmp_path / "out"
        proc = start_run(manifest, out, "--cancel-on-interrupt")
        _wait_for_creates(base_url, 3)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == EXIT_INTERRUPTED, err.decode()
        assert took < 8  # was: waited for the 10-second predictions, and canceled none
        assert simulator_stats(base_url)["predictions_by_status"] == {"canceled": 3}
        final = start_run(manifest, out)  # canceled on purpose: the next run makes them anew
        _, err = final.communicate(timeout=120)
        assert final.returncode == EXIT_OK, err.decode()
        assert simulator_stats(base_url)["predictions_by_status"] == {"canceled": 3, "succeeded": 3}
