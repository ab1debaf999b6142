"""A three-stage manifest of any size run on the in-process simulator, and the invariants every output
folder must hold: shared by the scale test (5,000 jobs) and ``bench/scale.py`` (100,000)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import sqlite3
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from flux_batch import load
from flux_batch.jobs import Job
from flux_batch.jobs.expand import expand
from flux_batch.jobs.plan import job_cost
from flux_batch.manifest.model import Manifest
from flux_batch.outputs.layout import IMAGES_DIR, MANIFEST_CSV, METADATA_PARQUET
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.session import ApiTarget, RunInfo, SessionResult, run_jobs
from flux_batch.simulator import FaultSpec

#: Words a loader could take for a split, a null or a number: in every prompt.
SUBJECTS = (
    "test tube", "train", "valid", "dev board", "eval", "None", "nan", "007", "2024-01-01", "null",
)  # fmt: skip
FAULTS = (
    FaultSpec("content_filter", probability=0.01),
    FaultSpec("ambiguous_create", probability=0.003),
    FaultSpec("html_5xx", probability=0.005),
    FaultSpec("truncated_download", probability=0.003),
    FaultSpec("reset", probability=0.002),
)
#: Statuses of a finished job without an image.
FAILED = {"failed", "canceled", "aborted", "expired", "skipped", "download_failed"}


def manifest_text(generations: int) -> str:
    """Stage ``train``: ``generations`` flux-schnell images; ``dev-test``: two kontext edits of each;
    ``eval``: a kontext edit of each gold edit. 4 jobs per generation."""
    styles = max(1, generations // len(SUBJECTS))
    return textwrap.dedent(
        f"""\
        version: 1
        name: scale
        seed: 5
        stages:
          - id: train
            model: black-forest-labs/flux-schnell
            prompt: "{{subject}}, {{style}}"
            input: {{megapixels: "0.25", output_format: jpg, num_inference_steps: 1}}
            matrix:
              subject: {json.dumps(list(SUBJECTS))}
              style: {json.dumps([f"style {i}" for i in range(styles)])}
          - id: dev-test
            model: black-forest-labs/flux-kontext-pro
            prompt: "make the {{subject}} {{edit}}"
            input: {{input_image: {{from: train}}, output_format: jpg, safety_tolerance: 2}}
            matrix:
              edit: [gold, glass]
          - id: eval
            model: black-forest-labs/flux-kontext-pro
            prompt: "the {{subject}} at night"
            input: {{input_image: {{from: dev-test, where: {{edit: gold}}}}, output_format: jpg}}
        """
    )


def write_manifest(folder: Path, generations: int) -> Manifest:
    path = folder / "scale.yaml"
    path.write_text(manifest_text(generations), encoding="utf-8")
    return load(path)


def jobs_of(manifest: Manifest) -> Iterator[tuple[Job, float | None]]:
    specs = {s.id: manifest.spec_for(s.id) for s in manifest.stages}
    for job in expand(manifest):
        yield job, job_cost(job, specs[job.stage])


def run_info(manifest: Manifest) -> RunInfo:
    stages = tuple(
        {"id": s.id, "model": s.model, "needs": list(s.needs), "vars": list(s.var_names),
         "product_axes": list(s.product_axes)}
        for s in manifest.stages
    )  # fmt: skip
    return RunInfo(manifest={"path": str(manifest.path), "document": manifest.document}, stages=stages)


async def run_manifest(
    manifest: Manifest,
    out: Path,
    http: httpx.AsyncClient,
    base_url: str,
    *,
    create_rpm: float | None = 600,
    **kw: Any,
) -> SessionResult:
    """Run the manifest into ``out`` as ``flux-batch run`` would, with its default limits (``kw``:
    run_jobs's clock, sleep, ...)."""
    return await run_jobs(
        jobs_of(manifest),
        RunSettings(out_dir=out, base_dir=manifest.path.parent),
        ApiTarget(base_url, "r8_test", create_rpm=create_rpm, other_rpm=3000),
        http,
        info=run_info(manifest),
        rng=random.Random(7),
        **kw,
    )


def table(out: Path) -> list[dict[str, str]]:
    with open(out / MANIFEST_CSV, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def check_folder(out: Path, manifest: Manifest) -> dict[str, Any]:
    """Assert every invariant of a finished folder; return figures for the caller's own checks."""
    rows = table(out)
    jobs = {job.id: job for job, _ in jobs_of(manifest)}
    db = sqlite3.connect(f"file:{out / 'state.db'}?mode=ro", uri=True)
    outputs = Counter(j for (j,) in db.execute("SELECT job_id FROM outputs WHERE file_name IS NOT NULL"))
    status = dict(db.execute("SELECT id, status FROM jobs WHERE live = 1").fetchall())
    # one row per image, and one per job without an image; every job of the manifest, once
    per_job = Counter(r["job_id"] for r in rows)
    assert set(per_job) == set(jobs) == set(status)
    for job_id, n in per_job.items():
        assert n == (outputs[job_id] if status[job_id] == "succeeded" else 1), job_id
    images = [r for r in rows if r["status"] == "succeeded" and r["file_name"]]
    assert all(r["status"] in FAILED or r["status"] == "succeeded" for r in rows)  # all finished
    # no file name twice; every file where the table says, with its sha256; nothing else in images/
    names = [r["file_name"] for r in images]
    assert len(names) == len(set(names))
    for r in images:
        assert hashlib.sha256((out / r["file_name"]).read_bytes()).hexdigest() == r["sha256"]
    on_disk = {p.relative_to(out).as_posix() for p in (out / IMAGES_DIR).rglob("*") if p.is_file()}
    assert on_disk == set(names)
    # prompts exactly as sent
    for r in rows:
        assert r["prompt"] == jobs[r["job_id"]].prompt
    # no folder over the Hub's limit (images, thumbnails, report parts: every folder of the output)
    biggest = max(len(os.listdir(d)) for d, _, _ in os.walk(out))
    assert biggest <= 10_000, biggest
    failed = [r for r in rows if r["status"] in FAILED]
    return {"rows": len(rows), "images": len(images), "failed": len(failed), "jobs": len(jobs), "db": db}


def stage_overlap(db: sqlite3.Connection, stage: str, upstream: str) -> tuple[float, float, float]:
    """(the first create of ``stage``, the median and the last completion of ``upstream``'s jobs), on the
    run's clock."""
    (first,) = db.execute(
        "SELECT MIN(a.intent_at) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.stage = ?", (stage,)
    ).fetchone()
    done = [t for (t,) in db.execute("SELECT finished_at FROM jobs WHERE stage = ? ORDER BY 1", (upstream,))]
    return float(first), float(done[len(done) // 2]), float(done[-1])


def report_counts(page: str) -> dict[str, int]:
    """The numbers the report's summary shows: images, jobs, and each status chip."""
    summary = page.split('<section id="summary"', 1)[1].split("</section>", 1)[0]
    images = re.search(
        r'Images</div><div class="value">([\d,]+)</div><div class="sub">from ([\d,]+) job', summary
    )
    assert images, "the report shows its image count"
    counts = {"images": int(images.group(1).replace(",", "")), "jobs": int(images.group(2).replace(",", ""))}
    for status, n in re.findall(r'<span class="chip (\w+)">\w+ ([\d,]+)</span>', page):
        counts[status] = int(n.replace(",", ""))
    return counts


def metadata_rows(out: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(out / METADATA_PARQUET).num_rows)
