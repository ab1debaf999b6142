"""The built wheel carries the report's page template, styles and script, and writes a report from them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from report_fixtures import build_output_folder

ROOT = Path(__file__).parents[1]
ASSETS = sorted(p.name for p in (ROOT / "flux_batch" / "report" / "assets").iterdir())


@pytest.mark.slow
def test_wheel_ships_the_report_assets_and_writes_a_report_with_them(tmp_path: Path) -> None:
    assert ASSETS == ["report.css", "report.html", "report.js"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("flux_batch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert {f"flux_batch/report/assets/{name}" for name in ASSETS} <= set(archive.namelist())
        archive.extractall(tmp_path / "site")
    build_output_folder(tmp_path / "out")
    probe = (
        "import sys, flux_batch.report as r; from pathlib import Path;"
        "print(r.__file__); print(r.write_report(Path(sys.argv[1])))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "out")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=True,
    )
    module, report = result.stdout.split()
    assert module.startswith(str(tmp_path / "site"))
    page = Path(report).read_text(encoding="utf-8")
    assert "--thumb:" in page and "renderGrid" in page  # the styles and the script are inlined
