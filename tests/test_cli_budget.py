"""The budget (#10.6): ``plan`` and ``run`` agree. Over the cap, ``run`` refuses before spending anything;
``--up-to-budget`` runs until the cap; estimates and the confirmation count only the work still to do."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from cli_helpers import fake_api, write_manifest

from flux_batch.cli import main


def write(tmp_path: Path, extra: str = "", xs: str = "cat, dog, owl, fox") -> Path:
    return write_manifest(tmp_path / "m.yaml", extra=extra, xs=xs)  # four flux-schnell images at $0.003


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["plan", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_over_the_cap_run_refuses_before_spending_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "max_cost_usd: 0.01")
    out = tmp_path / "o"
    assert main(["run", str(manifest), "--simulator", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "over the budget: $0.012 estimated for the 4 jobs to do is more than the $0.01 cap" in err
    assert "--up-to-budget" in err and "nothing submitted" in err
    assert not out.exists()
    plan = plan_json(capsys, str(manifest), "--out", str(out))
    assert plan["over_budget"] and plan["todo_cost_usd"] == pytest.approx(0.012)
    assert main(["plan", str(manifest), "--out", str(out)]) == 0
    assert "OVER the limit: `run` refuses to start" in capsys.readouterr().out
    # a cap given on the command line wins over the manifest's
    assert main(["run", str(manifest), "--simulator", "--out", str(out), "--max-cost", "0.02", "-q"]) == 0


def test_up_to_budget_runs_until_the_cap_then_the_rest_is_refused_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "max_cost_usd: 0.01")
    out = tmp_path / "o"
    assert main(["run", str(manifest), "--simulator", "--out", str(out), "--up-to-budget"]) == 1
    err = capsys.readouterr().err
    assert "this run: 3 succeeded" in err and "stopped taking new jobs at the cost cap" in err
    plan = plan_json(capsys, str(manifest), "--out", str(out))
    assert (plan["todo_jobs"], plan["spent_usd"]) == (1, pytest.approx(0.009))
    assert plan["over_budget"]  # $0.009 spent + $0.003 to do > $0.01
    assert main(["run", str(manifest), "--simulator", "--out", str(out)]) == 2
    assert "$0.009 already spent in" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_confirmation_counts_only_the_work_still_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "api: {confirm_above_usd: 0}")
    out = tmp_path / "o"
    with fake_api(monkeypatch) as api:
        assert main(["run", str(manifest), "--out", str(out), "--yes", "-q"]) == 0
        write(tmp_path, "api: {confirm_above_usd: 0}", "cat, dog, owl, fox, bee, ant")
        monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
        assert main(["run", str(manifest), "--out", str(out)]) == 0
        assert api.created == 4
    prompt = capsys.readouterr().out
    assert "2 jobs to do (4 already done), estimated $0.01 for them. Run? [y/N]" in prompt
