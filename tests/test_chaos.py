"""The standing chaos suite (#9): ``flux-batch run`` against the served simulator with its faults switched
on, SIGKILLed at random moments, the manifest edited between some runs (a value added to an axis, a
prompt changed, a stage added), then one run left to finish (and another, up to two more, while the last
one left downloads that kept failing, ``download_failed``, for the next run to do); then the invariants
behind the first promise (never lose work, never pay twice) checked on everything that happened:

- no job has more than one prediction: the simulator's duplicate counter (the same model and input
  created twice), and each job's attempts in the state (outputs never expire here, so no job ever has a
  reason to be created again);
- every live job succeeded, on a prediction the simulator made, and every prediction the simulator made
  for a live job is the one its job holds;
- every CSV row names a file that exists with the sha256 and size the row records; one row per image,
  and every image on disk has its row;
- nothing was written outside the output folder (the runs' working folder, HOME and TMPDIR stay empty);
- no run (nor the simulator) printed a traceback, and every run ended with an exit code that
  docs/running.md documents (or was killed).

Each scenario is one set of simulator faults, with a simulator and an output folder of its own. The
randomness (when each run is killed, before which runs the manifest is edited, and how) comes from one
seed, printed with the figures: ``CHAOS_SEED=N pytest tests/test_chaos.py`` replays a failure's kill
times and edits (what a run has done when it is killed still depends on the machine's speed), and
``CHAOS_KILLS`` sets how many runs each scenario kills (default 6). The figures (kills, runs, edits,
faults fired) are printed, attached to the test's report (``record_property``: in JUnit XML too), and
summed up at the end of the session.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from served import chain_manifest, simulator_predictions, simulator_process, simulator_stats, start_run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
KILLS = int(os.environ.get("CHAOS_KILLS") or 6)
KILL_AFTER_S = (0.3, 3.5)  # from the first second (setting the folder up) to downloads and the report
FINAL_TIMEOUT_S = 300
FINAL_RUNS = 3  # a run that leaves downloads that kept failing (download_failed) is followed by another

#: Simulator faults of each scenario (``flux-batch simulate --fault``; see docs/simulator.md).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "ambiguous-creates": ("ambiguous_create:0.15", "ambiguous_create:0.1:mode=drop"),
    "html-5xx-pages": ("html_5xx:0.08", "create_5xx:0.05"),
    "slow-answers": ("slow:0.1:delay=2", "latency_spike:0.1:factor=4"),
    "flaky-file-host": ("flaky_file:0.5", "html_5xx:0.15:on=output"),
    "all-faults": (
        "ambiguous_create:0.1",
        "ambiguous_create:0.05:mode=drop",
        "html_5xx:0.05",
        "slow:0.05:delay=2",
        "flaky_file:0.3",
        "html_5xx:0.1:on=output",
    ),
}
EDITS = ("add an axis value", "change a prompt", "add a stage")


def manifest_text(base_url: str, edits: set[str]) -> str:
    """The chaos manifest (24 jobs in two stages) with the given edits applied (up to 48 in three)."""
    styles = ["ink", "oil", "watercolor"] + (["pixel art"] if "add an axis value" in edits else [])
    metal = "silver" if "change a prompt" in edits else "gold"
    subjects = ["fox", "owl", "lighthouse", "boat"]
    text = chain_manifest(base_url, name="chaos", seed=5, subjects=subjects, styles=styles, metal=metal)
    if "add a stage" in edits:
        text += """  - id: night
    model: black-forest-labs/flux-kontext-pro
    needs: [edit]
    prompt: "the same {subject} at night"
    input:
      input_image: {from: edit}
"""
    return text


def documented_exit_codes() -> set[int]:
    """The exit codes in docs/running.md's table."""
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}


@dataclass
class Figures:
    """What one scenario covered."""

    scenario: str
    seed: int
    runs: int = 0
    kills: int = 0
    finished_before_kill: int = 0
    edits: list[str] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    faults_fired: dict[str, int] = field(default_factory=dict)
    predictions: int = 0
    duplicates: int = 0
    jobs: int = 0
    wall_s: float = 0.0

    def line(self) -> str:
        fired = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_fired.items())) or "none"
        return (
            f"chaos[{self.scenario}] seed={self.seed}: {self.runs} runs, {self.kills} SIGKILLs "
            f"({self.finished_before_kill} runs ended before their kill), edits: {', '.join(self.edits)}; "
            f"{self.jobs} live jobs, {self.predictions} predictions, {self.duplicates} duplicates; "
            f"faults fired: {fired}; exit codes {self.exit_codes}; {self.wall_s:.0f} s"
        )


@dataclass
class Chaos:
    """One scenario's folders and what its runs did."""

    root: Path
    figures: Figures
    problems: list[str] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.root / "work"  # the runs' working folder: the manifest and the output folder

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def manifest(self) -> Path:
        return self.work / "chaos.yaml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def download_failed(self) -> int:
        """How many live jobs the last run left ``download_failed``."""
        db = sqlite3.connect(f"file:{self.out / 'state.db'}?mode=ro", uri=True)
        try:
            sql = "SELECT COUNT(*) FROM jobs WHERE live = 1 AND status = 'download_failed'"
            return int(db.execute(sql).fetchone()[0])
        finally:
            db.close()

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.root / "home"), "TMPDIR": str(self.root / "tmp")}

    def run(self, n: int, kill_after: float | None) -> int:
        """Run n: killed after ``kill_after`` seconds unless it ends first; None: the final run, which must
        end by itself."""
        with (self.logs / f"run{n}.err").open("wb") as err:
            proc = start_run(self.manifest, self.out, stderr=err, cwd=self.work, env=self.env())
            try:
                rc = proc.wait(timeout=kill_after if kill_after is not None else FINAL_TIMEOUT_S)
                if kill_after is not None:
                    self.figures.finished_before_kill += 1
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                rc = proc.wait()
                if kill_after is None:
                    self.problems.append(f"the final run did not end within {FINAL_TIMEOUT_S} s")
                else:
                    self.figures.kills += 1
        self.figures.runs += 1
        self.figures.exit_codes.append(rc)
        return rc


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_chaos(scenario: str, tmp_path: Path, record_property: Any) -> None:
    rng = random.Random(f"{SEED}:{scenario}")
    chaos = Chaos(tmp_path, Figures(scenario, SEED))
    for folder in (chaos.work, chaos.logs, tmp_path / "home", tmp_path / "tmp"):
        folder.mkdir()
    edits = rng.sample(EDITS, k=min(len(EDITS), KILLS - 1))
    edit_before = dict(zip(rng.sample(range(1, KILLS), k=len(edits)), edits, strict=True))
    applied: set[str] = set()
    started = time.monotonic()
    faults = [flag for spec in SCENARIOS[scenario] for flag in ("--fault", spec)]
    try:
        with (
            (chaos.logs / "simulator.err").open("wb") as sim_err,
            simulator_process("--latency", "0.4", *faults, stderr=sim_err) as base_url,
        ):
            for n in range(KILLS):
                if n in edit_before:
                    applied.add(edit_before[n])
                    chaos.figures.edits.append(f"{edit_before[n]} (before run {n + 1})")
                chaos.manifest.write_text(manifest_text(base_url, applied), encoding="utf-8")
                chaos.run(n, rng.uniform(*KILL_AFTER_S))
            n = KILLS
            while chaos.run(n, None) == 1 and n < KILLS + FINAL_RUNS - 1 and chaos.download_failed():
                n += 1
            if chaos.figures.exit_codes[-1] != 0:
                tail = (chaos.logs / f"run{n}.err").read_text(errors="replace")[-800:]
                chaos.problems.append(f"the final run exited {chaos.figures.exit_codes[-1]}: {tail}")
            stats = simulator_stats(base_url)
            made = simulator_predictions(base_url)
        chaos.figures.faults_fired = dict(stats["faults_fired"])
        chaos.figures.predictions = stats["predictions_created"]
        chaos.figures.duplicates = stats["duplicate_predictions"]
        check_exit_codes_and_tracebacks(chaos)
        check_paid_once(chaos, stats, made)
        check_outputs(chaos)
        check_nothing_outside(chaos)
    finally:
        chaos.figures.wall_s = time.monotonic() - started
        record_property("chaos", chaos.figures.line())  # summed up at the end of the session: conftest.py
        record_property("chaos_kills", chaos.figures.kills)
        record_property("chaos_runs", chaos.figures.runs)
        print(chaos.figures.line())
    assert not chaos.problems, f"{chaos.figures.line()}\n" + "\n".join(chaos.problems)


def check_exit_codes_and_tracebacks(chaos: Chaos) -> None:
    allowed = documented_exit_codes()
    for n, rc in enumerate(chaos.figures.exit_codes):
        if rc != -signal.SIGKILL and rc not in allowed:
            chaos.problems.append(f"run {n + 1} exited {rc}, not a documented exit code ({sorted(allowed)})")
    for log in sorted(chaos.logs.iterdir()):
        text = log.read_text(errors="replace")
        if "Traceback (most recent call last)" in text or "exception was never retrieved" in text:
            chaos.problems.append(f"{log.name} holds a traceback:\n{text[-2000:]}")


def check_paid_once(chaos: Chaos, stats: dict[str, Any], made: list[dict[str, Any]]) -> None:
    """No job holds two predictions; every live job succeeded on a prediction the simulator made, and every
    prediction made for a live job's request is the one that job holds."""
    problems = chaos.problems
    if stats["duplicate_predictions"]:
        problems.append(f"the simulator made {stats['duplicate_predictions']} duplicate predictions")
    db = sqlite3.connect(f"file:{chaos.out / 'state.db'}?mode=ro", uri=True)
    try:
        held: dict[str, set[str]] = {}
        for job_id, prediction_id in db.execute("SELECT job_id, prediction_id FROM attempts"):
            if prediction_id:
                held.setdefault(job_id, set()).add(prediction_id)
        live = {job: (status, pid) for job, status, pid in db.execute(
            "SELECT id, status, prediction_id FROM jobs WHERE live = 1"
        )}  # fmt: skip
        requests = {
            json.dumps([model, json.loads(sent)], sort_keys=True): job_id
            for job_id, model, sent in db.execute(
                "SELECT a.job_id, j.model, a.sent_input FROM attempts a JOIN jobs j ON j.id = a.job_id"
                " WHERE j.live = 1"
            )
        }
    finally:
        db.close()
    chaos.figures.jobs = len(live)
    twice = {job: sorted(ids) for job, ids in held.items() if len(ids) > 1}
    if twice:
        problems.append(f"{len(twice)} jobs hold more than one prediction in their attempts: {twice}")
    not_done = {job: status for job, (status, _) in live.items() if status != "succeeded"}
    if not_done:
        problems.append(f"{len(not_done)} of {len(live)} live jobs did not succeed: {not_done}")
    made_ids = {p["id"] for p in made}
    unknown = {job: pid for job, (_, pid) in live.items() if pid is not None and pid not in made_ids}
    if unknown:
        problems.append(f"{len(unknown)} jobs hold a prediction the simulator never made: {unknown}")
    extra = {}
    for p in made:
        job = requests.get(json.dumps([p["model"], p["input"]], sort_keys=True))
        if job is not None and live[job][1] != p["id"]:
            extra[p["id"]] = job
    if extra:
        problems.append(f"{len(extra)} predictions were made for live jobs that hold another one: {extra}")


def check_outputs(chaos: Chaos) -> None:
    """Every row's file is there with its sha256 and size; one row per image; every image has its row."""
    out, problems = chaos.out, chaos.problems
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    named = [r["file_name"] for r in rows if r["file_name"]]
    if len(named) != len(set(named)):
        problems.append(f"{len(named) - len(set(named))} images have more than one row in manifest.csv")
    jobs = {r["job_id"] for r in rows}
    if len(jobs) != chaos.figures.jobs:
        problems.append(f"manifest.csv has {len(jobs)} jobs; the state has {chaos.figures.jobs} live")
    for row in rows:
        if not row["file_name"]:
            continue
        path = out / row["file_name"]
        if not path.is_file():
            problems.append(f"{row['file_name']} (job {row['job_id']}) is missing")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != row["sha256"] or len(data) != int(row["bytes"]):
            problems.append(f"{row['file_name']} does not match its recorded sha256 and size")
    images = [p.relative_to(out).as_posix() for p in (out / "images").rglob("*") if p.is_file()]
    unlisted = [name for name in images if name not in named and any(job in name for job in jobs)]
    if unlisted:
        problems.append(f"images of live jobs with no row: {unlisted}")
    partial = [name for name in images if name.endswith(".part")]
    if partial:
        problems.append(f"partial downloads left: {partial}")


def check_nothing_outside(chaos: Chaos) -> None:
    """Only the manifest and the output folder in the runs' working folder; HOME and TMPDIR empty."""
    outside = [
        p.relative_to(chaos.root).as_posix()
        for folder in (chaos.work, chaos.root / "home", chaos.root / "tmp")
        for p in folder.rglob("*")
        if p != chaos.manifest and chaos.out not in (p, *p.parents)
    ]
    if outside:
        chaos.problems.append(f"files written outside the output folder: {outside}")
