"""The built wheel carries the schemas, and the package finds them there (not only in a checkout)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_wheel_ships_schemas_and_loads_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("flux_batch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    models = {Path(n).name for n in names if n.startswith("flux_batch/_schemas/models/")}
    assert {f.name for f in (ROOT / "schemas" / "models").glob("*.json")} <= models
    assert "flux_batch/_schemas/manifest.schema.json" in names
    # import the unpacked wheel (not the checkout) and load a pipeline through it
    probe = (
        "import flux_batch.resources as r, flux_batch.models as m, flux_batch.manifest as man;"
        "print(r.schemas_dir());"
        "print(len(m.known_models()));"
        f"print(man.load({str(ROOT / 'pipelines' / 'chain.yaml')!r}).name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=True,
    )
    schemas_dir, count, name = result.stdout.split()
    assert schemas_dir == str(tmp_path / "site" / "flux_batch" / "_schemas")
    assert (count, name) == ("7", "chain")
