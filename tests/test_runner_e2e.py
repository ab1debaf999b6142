"""End to end: the ``run`` and ``status`` commands, the simulator served on loopback (Replicate and proxy
style), and the output folder read by pandas and by Hugging Face ``datasets``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from runner_harness import chain_jobs

from flux_batch.cli import main
from flux_batch.errors import EXIT_INVALID, EXIT_LOCKED, EXIT_OK
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.lock import FolderLock
from flux_batch.runner.session import ApiTarget, run_jobs
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread

QUICKSTART = Path(__file__).resolve().parent.parent / "pipelines" / "quickstart.yaml"
pytestmark = pytest.mark.slow


def test_quickstart_on_the_simulator_then_pandas_and_datasets(tmp_path: Path) -> None:
    import pandas as pd
    from datasets import load_dataset

    out = tmp_path / "out"
    assert main(["run", str(QUICKSTART), "--simulator", "--out", str(out), "--quiet"]) == EXIT_OK
    frame = pd.read_csv(out / "manifest.csv")
    assert len(frame) == 12 and set(frame["status"]) == {"succeeded"}
    assert {"prompt", "seed", "subject", "style", "file_name", "sha256", "width"} <= set(frame.columns)
    dataset = load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(dataset) == 12
    assert {"image", "prompt", "seed", "subject", "style"} <= set(dataset.column_names)
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["counts"] == {"succeeded": 12} and run["summary"]["images"] == 12
    assert run["plan"]["jobs"] == 12 and run["manifest"]["sha256"]
    assert (out / "report.html").exists()
    # Running again resumes: nothing to do, still exit 0.
    assert main(["run", str(QUICKSTART), "--simulator", "--out", str(out), "--quiet"]) == EXIT_OK


def test_status_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    main(["run", str(QUICKSTART), "--simulator", "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["status", str(out), "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["stages"] == {"sketch": {"succeeded": 12}} and data["done"] == 12
    assert main(["status", str(out)]) == EXIT_OK
    assert "12/12 jobs done" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "nothing")]) == EXIT_INVALID


def test_missing_token_fails_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUICKSTART.read_text().replace("  simulator: true\n", "  simulator: false\n"))
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out)]) == EXIT_INVALID
    assert not out.exists()


def test_a_locked_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FolderLock(out):
        # Same process: flock locks are per open file, so a second open is refused like another process.
        assert main(["run", str(QUICKSTART), "--simulator", "--out", str(out), "--quiet"]) == EXIT_LOCKED


@pytest.mark.parametrize("prefix", ["/v1", "/replicate/v1"])
def test_served_on_loopback(tmp_path: Path, prefix: str) -> None:
    app = create_app(SimConfig(latency=0.2, seed=5))
    with serve_in_thread(app) as root:

        async def go() -> None:
            async with httpx.AsyncClient() as http:
                result = await run_jobs(
                    chain_jobs(4),
                    RunSettings(out_dir=tmp_path, max_in_flight=8, wait=1),
                    ApiTarget(root + prefix, "r8_test"),
                    http,
                    report=False,
                )
                assert result.exit_code == EXIT_OK and result.counts == {"succeeded": 8}
                stats = (await http.get(root + "/_simulator/stats")).json()
                assert stats["duplicate_predictions"] == 0 and stats["predictions_created"] == 8

        asyncio.run(go())
