"""A user's script that calls ``flux_batch.run`` without an ``if __name__ == "__main__":`` guard runs once.

The image workers are spawned processes, and multiprocessing runs the parent's main script again in each
spawned child unless told otherwise: such a script would start a second run in every worker (a paid one
against the real API, if its output folder differed). The workers must not import the parent's
``__main__``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # a real process with spawned workers: a few seconds


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import flux_batch
            print("top level", flush=True)
            manifest = flux_batch.load({str(ROOT / "pipelines" / "quickstart.yaml")!r})
            result = flux_batch.run(manifest, out="out", simulator=True)
            print("succeeded", result.counts.get("succeeded"), flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("top level") == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "succeeded 12" in done.stdout
    rows = (tmp_path / "out" / "manifest.csv").read_text().splitlines()
    assert len(rows) == 13
