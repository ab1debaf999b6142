"""`flux-batch report DIR`: writes the report, prints where, and fails in one line on a wrong folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import build_output_folder

from flux_batch.cli import main


def test_report_writes_the_page_and_sheets_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_output_folder(tmp_path / "out")
    assert main(["report", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"report: {tmp_path / 'out/report.html'}",
        f"contact sheet: {tmp_path / 'out/grid_=base.png'}",
        f"contact sheet: {tmp_path / 'out/grid_=edit.png'}",
    ]
    assert (tmp_path / "out/report.html").stat().st_size > 0


def test_report_open_hands_the_file_url_to_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build_output_folder(tmp_path / "out")
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert main(["report", str(tmp_path / "out"), "--open"]) == 0
    assert opened == [(tmp_path / "out/report.html").resolve().as_uri()]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nowhere", "is not a folder"),
        (lambda p: p, "has no manifest.csv: is it a flux-batch output folder?"),
    ],
)
def test_a_wrong_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flux-batch: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
