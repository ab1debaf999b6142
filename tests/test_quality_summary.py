"""Bad samples and near-duplicates counted where a user looks: run.json's summary, the run's last line,
and the report (a Flagged card, and each image's flags in the table's rows)."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import write_manifest
from export_folder import build_folder

from flux_batch.cli import main
from flux_batch.outputs import quality
from flux_batch.outputs.quality import NEAR_DUPLICATE, Quality, Tally, describe
from flux_batch.outputs.tables import write_tables
from flux_batch.report import write_report
from flux_batch.runner.state.store import Store


def test_the_tally_counts_what_an_export_leaves_out() -> None:
    tally = Tally()
    assert tally.add("", "00000000000000ff") == ()
    assert tally.add("blank;wrong_size", None) == ("blank", "wrong_size")
    assert tally.add("undecodable", None) == ("undecodable",)
    assert tally.add(None, "00000000000000fe") == (NEAR_DUPLICATE,)  # 1 bit from the first
    assert tally.add("", "ffffffffffffff00") == ()
    assert tally.add("blank", "00000000000000ff") == ("blank",)  # flagged: not counted a duplicate too
    assert tally.summary() == {
        "flagged": 3,
        "flags": {"undecodable": 1, "blank": 2, "wrong_size": 1},
        "near_duplicates": 1,
    }
    assert describe(tally.summary()) == "3 flagged: 1 undecodable, 2 blank, 1 wrong size; 1 near-duplicate"
    assert describe(Tally().summary()) == ""


def report_rows(out: Path) -> list[dict[str, object]]:
    """The rows the report's parts hold, by field name."""
    page = (out / "report.html").read_text()
    index = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S)[1])
    rows = []
    for call in re.findall(r"fluxReport\.part\(\d+,(.*)\);", page):
        rows += [dict(zip(index["fields"], values, strict=True)) for values in json.loads(call)]
    return rows


def test_the_report_shows_flags_and_near_duplicates_as_the_table_has_them(tmp_path: Path) -> None:
    folder = build_folder(tmp_path / "out", 20, blank=2, wrong_size=1, duplicates=3, tables=False)
    tally = Tally()
    store = Store.open(folder.out)
    assert write_tables(store, folder.out, tally) == (20, 20)
    store.close()
    assert tally.summary() == {"flagged": 3, "flags": {"blank": 2, "wrong_size": 1}, "near_duplicates": 3}
    write_report(folder.out)
    page = (folder.out / "report.html").read_text()
    card = re.search(r'<div class="card bad"><div class="label">Flagged</div>.*?</div></div>', page)
    assert card and ">3<" in card[0] and "3 flagged: 2 blank, 1 wrong size; 3 near-duplicates" in card[0]
    labels = {row["job_id"]: row["flags"] for row in report_rows(folder.out)}
    assert {k for k, v in labels.items() if v == "blank"} == set(folder.blank)
    assert {k for k, v in labels.items() if v == "wrong_size"} == set(folder.wrong_size)
    assert {k for k, v in labels.items() if v == NEAR_DUPLICATE} == set(folder.duplicates)


def test_a_run_counts_its_flagged_images_in_run_json_and_its_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real, lock, calls = quality.inspect_image, threading.Lock(), []

    def two_blank(data: bytes, inputs: object = None, **kwargs: Any) -> Quality:  # a safety filter's black
        found = real(data, **kwargs)
        with lock:
            calls.append(1)
            first = len(calls) <= 2
        return Quality(found.phash, ("blank",)) if first else found

    threads = ThreadPoolExecutor(2)  # the images are checked in this process, where the fake is
    monkeypatch.setattr("flux_batch.outputs.quality.inspect_image", two_blank)
    monkeypatch.setattr("flux_batch.outputs.derived.shared_pool", lambda: threads)
    monkeypatch.setattr("flux_batch.api.SIMULATOR_LATENCY_S", 0.01)
    out = tmp_path / "o"
    assert main(["run", str(write_manifest(tmp_path / "m.yaml")), "--simulator", "--out", str(out)]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"flux-batch: {out}: 4 succeeded of 4 jobs, 4 images (2 flagged: 2 blank); $0.01" in last
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert (summary["flagged"], summary["flags"], summary["near_duplicates"]) == (2, {"blank": 2}, 0)
    assert sorted(str(row["flags"]) for row in report_rows(out)) == ["", "", "blank", "blank"]
    assert "2 flagged: 2 blank" in (out / "report.html").read_text()
