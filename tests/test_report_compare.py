"""``flux-batch report DIR --compare OTHER``: the other run's image for the same stage and variables."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from flux_batch.cli import main

MANIFEST = """\
version: 1
name: {name}
api: {{simulator: true}}
stages:
  - id: a
    model: {model}
    prompt: "{prompt}"
    matrix: {{subject: [fox, owl, {extra}], style: [ink, oil]}}
"""


def run(root: Path, name: str, model: str, prompt: str, extra: str) -> Path:
    text = MANIFEST.format(name=name, model=model, prompt=prompt, extra=extra)
    (root / f"{name}.yaml").write_text(text, encoding="utf-8")
    assert main(["run", str(root / f"{name}.yaml"), "--out", str(root / name), "--quiet"]) == 0
    return root / name


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def page_rows(out: Path) -> list[dict[str, object]]:
    html = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    rows = []
    for body in re.findall(r"fluxReport\.part\(\d+,(.*?)\);\n", html, re.S):
        rows += [dict(zip(data["fields"], values, strict=True)) for values in json.loads(body)]
    return rows


def test_two_runs_side_by_side_by_their_variables(tmp_path: Path) -> None:
    before = run(tmp_path, "before", "black-forest-labs/flux-schnell", "a {subject}, {style}", "cat")
    after = run(
        tmp_path, "after", "black-forest-labs/flux-2-dev", "a small {subject}, {style} drawing", "yak"
    )
    assert main(["report", str(after), "--compare", str(before)]) == 0
    old = {(r["subject"], r["style"]): r for r in rows_of(before)}
    rows = page_rows(after)
    assert len(rows) == 6
    for row in rows:
        key = (row["vars"]["subject"], row["vars"]["style"])  # type: ignore[index]
        if key[0] == "yak":  # no such combination before
            assert row["cmp"] == ""
            continue
        other = (after / str(row["cmp"])).resolve()
        assert other.is_file() and other.is_relative_to(before.resolve())
        assert other.stem == old[key]["job_id"]  # the thumbnail of the same variables' image
    assert main(["report", str(after)]) == 0  # without --compare: no column for it
    assert all("cmp" not in r for r in page_rows(after))


def test_compare_with_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.csv").write_text("job_id,stage\n", encoding="utf-8")
    assert main(["report", str(tmp_path / "out"), "--compare", str(tmp_path)]) == 2
    assert "not an output folder" in capsys.readouterr().err
