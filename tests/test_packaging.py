"""The built wheel carries everything the package reads at run time (the schemas, the report's assets), and
the package finds them there, not only in a checkout. One wheel build serves every check."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from report_fixtures import build_output_folder

ROOT = Path(__file__).parents[1]
ASSETS = sorted(p.name for p in (ROOT / "flux_batch" / "report" / "assets").iterdir())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout and unpacked: a folder to put on PYTHONPATH."""
    build = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(build), str(ROOT)],
        check=True,
        cwd=build,
    )
    (wheel,) = build.glob("flux_batch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(build / "site")
    return build / "site"


def _probe(site: Path, code: str, *args: str) -> list[str]:
    """Run ``code`` against the unpacked wheel only (not the checkout); its printed words."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=site.parent,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


@pytest.mark.slow
def test_wheel_ships_schemas_and_loads_them(site: Path) -> None:
    shipped = {p.name for p in (site / "flux_batch" / "_schemas" / "models").glob("*.json")}
    assert {f.name for f in (ROOT / "schemas" / "models").glob("*.json")} <= shipped
    assert (site / "flux_batch" / "_schemas" / "manifest.schema.json").is_file()
    probe = (
        "import flux_batch.resources as r, flux_batch.models.catalog as m, flux_batch as man;"
        "print(r.schemas_dir());"
        "print(len(m.known_models()));"
        f"print(man.load({str(ROOT / 'pipelines' / 'chain.yaml')!r}).name)"
    )
    schemas_dir, count, name = _probe(site, probe)
    assert schemas_dir == str(site / "flux_batch" / "_schemas")
    assert (count, name) == ("13", "chain")


@pytest.mark.slow
def test_wheel_ships_the_report_assets_and_writes_a_report_with_them(site: Path, tmp_path: Path) -> None:
    assert ASSETS == ["report.css", "report.html", "report.js"]
    assert all((site / "flux_batch" / "report" / "assets" / name).is_file() for name in ASSETS)
    build_output_folder(tmp_path / "out")
    probe = (
        "import sys, flux_batch.report as r; from pathlib import Path;"
        "print(r.__file__); print(r.write_report(Path(sys.argv[1])))"
    )
    module, report = _probe(site, probe, str(tmp_path / "out"))
    assert module.startswith(str(site))
    page = Path(report).read_text(encoding="utf-8")
    assert "--thumb:" in page and "renderGrid" in page  # the styles and the script are inlined
