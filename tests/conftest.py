"""Session-wide hooks: every test has its own cache of fetched model schemas (never the user's), the
built-in simulator answers at once and fsync returns at once; the chaos suite's figures, summed up at the
end of the session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_model_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FLUX_BATCH_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _instant_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run --simulator`` (and ``flux_batch.run(simulator=True)``) with near-instant predictions: the half
    second the quickstart takes is for people watching, and a test of the CLI only waited on it."""
    monkeypatch.setattr("flux_batch.api.SIMULATOR_LATENCY_S", 0.01)


@pytest.fixture(autouse=True)
def _tables_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick tests write a run's tables in their own process: starting the child process a run writes
    them in (flux_batch.outputs.snapshot) would cost more than most of their runs. Slow tests, and
    ``flux-batch`` started as a command, use the child."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr("flux_batch.runner.session.TABLES_IN_CHILD", False)


@pytest.fixture(autouse=True)
def _image_workers_kept(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick tests keep the image worker processes from one test's run to the next (a run ends them, so
    that their memory is gone before its final tables: starting them again for each test would cost more
    than most of their runs). Slow tests, and ``flux-batch`` started as a command, end them."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr("flux_batch.runner.session.IMAGE_WORKERS_KEPT", True)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.fsync`` returns at once in the tests' own process. What it buys, files that survive a power
    cut, no test can observe (a killed process loses nothing the kernel holds), and on a busy disk the
    quick suite's fsyncs waited about 5 ms each (1,170 of them, 5.5 s, in six test files).
    The crash and chaos tests kill runs in child processes, which keep the real one."""
    monkeypatch.setattr("os.fsync", lambda fd: None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per chaos scenario run (tests/test_chaos.py records them), then the totals."""
    lines: list[str] = []
    kills = runs = 0
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            props = dict(getattr(report, "user_properties", ()))
            if "chaos" in props and getattr(report, "when", "call") == "call":
                lines.append(f"{outcome.upper()} {props['chaos']}")
                kills += int(props["chaos_kills"])
                runs += int(props["chaos_runs"])
    if lines:
        terminalreporter.section("chaos suite")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"chaos suite: {len(lines)} scenarios, {runs} runs, {kills} SIGKILLs")
