"""Session-wide hooks: the chaos suite's figures, summed up at the end of the session."""

from __future__ import annotations

import pytest


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
