"""A synthetic flux-batch output folder, laid out exactly as docs (contracts) say, for the report tests.

Two stages: ``base`` (flux-dev, ``subject`` x ``guidance``, one job failed by the content filter) and
``edit`` (flux-kontext-pro on every base image, x ``style``; the failed base job's edits are skipped).
Images are small Pillow drawings, thumbnails made with the real ``make_thumbnail``. Each shape of folder is
drawn once a session and copied for each test that asks for it.
"""

from __future__ import annotations

import atexit
import colorsys
import copy
import csv
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from flux_batch.jobs import Job, ids
from flux_batch.outputs.layout import image_dir
from flux_batch.outputs.metadata import MetadataWriter
from flux_batch.outputs.quality import inspect_image
from flux_batch.outputs.tables import columns as table_columns
from flux_batch.report.thumbnails import make_thumbnail

DEV = "black-forest-labs/flux-dev"
KONTEXT = "black-forest-labs/flux-kontext-pro"
BASE_INPUTS = ("aspect_ratio", "num_inference_steps", "output_format", "guidance")
EDIT_INPUTS = ("input_image", "aspect_ratio", "output_format", "safety_tolerance")
FILTER_ERROR = "Output image was flagged as sensitive; try a different prompt or seed (E005)"


@dataclass
class Synthetic:
    """What the fixture wrote, for the tests' expectations."""

    out: Path
    subjects: tuple[str, ...]
    guidances: tuple[str, ...]
    styles: tuple[str, ...]
    failed_job: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def stage_rows(self, stage: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["stage"] == stage]


def columns(var_names: Sequence[str], input_names: Sequence[str]) -> list[str]:
    """manifest.csv's columns in the contract's order (the tables' own, so the fixture cannot drift)."""
    return list(table_columns(var_names, input_names).header)


def _draw(path: Path, size: int, hue: float, label: str, ring: float | None = None) -> bytes:
    r, g, b = (int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.55, 0.9))
    image = Image.new("RGB", (size, size), (r, g, b))
    draw = ImageDraw.Draw(image)
    m = size // 5
    draw.ellipse((m, m, size - m, size - m), fill=(255, 255, 255))
    if ring is not None:
        rr, rg, rb = (int(c * 255) for c in colorsys.hsv_to_rgb(ring, 0.9, 0.7))
        draw.ellipse((m, m, size - m, size - m), outline=(rr, rg, rb), width=max(2, size // 16))
    draw.text((m + 4, size // 2 - 6), label[:10], fill=(20, 20, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
    return path.read_bytes()


_BUILT: dict[tuple[Any, ...], Synthetic] = {}


def build_output_folder(
    out: Path,
    *,
    subjects: Sequence[str] = ("cat", "dog", "fox"),
    guidances: Sequence[str] = ("2", "3", "4.5"),
    styles: Sequence[str] = ("gold", "glass"),
    fail: tuple[str, str] | None = ("dog", "4.5"),
    image_size: int = 96,
    thumbnails: bool = True,
    finished: bool = True,
) -> Synthetic:
    """Write manifest.csv, metadata.parquet, run.json, images and thumbnails under ``out``."""
    key = (tuple(subjects), tuple(guidances), tuple(styles), fail, image_size, thumbnails, finished)
    if key not in _BUILT:
        where = Path(tempfile.mkdtemp(prefix="flux-batch-report-fixture-"))
        atexit.register(shutil.rmtree, where, ignore_errors=True)
        _BUILT[key] = _build(where / "out", *key)
    built = _BUILT[key]
    shutil.copytree(built.out, out, dirs_exist_ok=True)
    # run.json names the manifest beside the folder: beside this copy
    run_json = out / "run.json"
    if run_json.is_file():
        text = run_json.read_text(encoding="utf-8")
        here, there = (json.dumps(str(p.parent / "sweep.yaml"))[1:-1] for p in (built.out, out))
        run_json.write_text(text.replace(here, there), encoding="utf-8")
    return dataclasses.replace(built, out=out, rows=copy.deepcopy(built.rows))


def _build(
    out: Path,
    subjects: Sequence[str],
    guidances: Sequence[str],
    styles: Sequence[str],
    fail: tuple[str, str] | None,
    image_size: int,
    thumbnails: bool,
    finished: bool,
) -> Synthetic:
    out.mkdir(parents=True, exist_ok=True)
    syn = Synthetic(out, tuple(subjects), tuple(guidances), tuple(styles))
    base_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    clock = 0
    for subject in subjects:
        for gi, guidance in enumerate(guidances):
            input = {
                "prompt": f"a photo of a {subject}, studio light",
                "seed": ids.derive_seed(42, "base", {"subject": subject, "guidance": guidance}),
                "aspect_ratio": "1:1",
                "num_inference_steps": 28,
                "output_format": "png",
                "guidance": float(guidance) if "." in guidance else int(guidance),
            }
            vars = {"subject": subject, "guidance": guidance}
            job = Job(ids.job_id(DEV, None, input), "base", DEV, None, input, vars, slug=ids.slugify(subject))
            failed = fail == (subject, guidance)
            clock += 1
            row = _row(job, vars, clock)
            if failed:
                row.update(status="failed", error=FILTER_ERROR, cost_usd="")
                syn.failed_job = job.id
            else:
                rel = f"{image_dir('base', clock)}/{job.file_stem()}.png"
                hue = gi / max(1, len(guidances))
                _finish(
                    row, out, rel, _draw(out / rel, image_size, hue, subject), image_size, thumbnails, 0.025
                )
            syn.rows.append(row)
            base_by_key[(subject, guidance)] = row
    for (subject, guidance), base in base_by_key.items():
        for ti, style in enumerate(styles):
            input = {
                "prompt": f"make the {subject} {style}",
                "seed": ids.derive_seed(
                    42, "edit", {"subject": subject, "guidance": guidance, "style": style}
                ),
                "input_image": {"$upstream": base["job_id"], "output": 0},
                "aspect_ratio": "match_input_image",
                "output_format": "png",
                "safety_tolerance": 2,
            }
            vars = {"subject": subject, "guidance": guidance, "style": style}
            job = Job(
                ids.job_id(KONTEXT, None, input, [base["job_id"]]),
                "edit",
                KONTEXT,
                None,
                input,
                vars,
                needs=(base["job_id"],),
                slug=ids.slugify(f"{subject}-{style}"),
            )
            clock += 1
            row = _row(job, vars, clock)
            row["input_input_image"] = base.get("file_name", "")
            row["upstream_job_id"] = base["job_id"]
            if base["status"] != "succeeded":
                row.update(status="skipped", error=f"upstream job {base['job_id']} failed", cost_usd="")
            else:
                rel = f"{image_dir('edit', clock)}/{job.file_stem()}.png"
                hue = guidances.index(guidance) / max(1, len(guidances))
                data = _draw(out / rel, image_size, hue, f"{subject}*", ring=ti / max(1, len(styles)) + 0.1)
                _finish(row, out, rel, data, image_size, thumbnails, 0.04)
            syn.rows.append(row)
    _write_csvs(out, syn.rows)
    _write_run_json(out, syn, finished)
    return syn


def _row(job: Job, vars: dict[str, str], clock: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "job_id": job.id,
        "stage": job.stage,
        "model": job.model,
        "status": "succeeded",
        "prompt": job.prompt,
        "seed": job.seed,
        **vars,
    }
    for key, value in job.input.items():
        if key not in ("prompt", "seed") and not isinstance(value, dict):
            row[f"input_{key}"] = value
    row.update(
        prediction_id=hashlib.sha1(job.id.encode()).hexdigest()[:26],
        created_at=f"2025-01-01T00:{clock // 60:02d}:{clock % 60:02d}Z",
        completed_at=f"2025-01-01T00:{(clock + 3) // 60 % 60:02d}:{(clock + 3) % 60:02d}Z",
        attempts=1,
        predict_time=2.5,
    )
    return row


def _finish(
    row: dict[str, Any], out: Path, rel: str, data: bytes, size: int, thumbnails: bool, cost: float
) -> None:
    digest = hashlib.sha256(data).hexdigest()
    row.update(file_name=rel, sha256=digest, bytes=len(data), width=size, height=size, cost_usd=cost)
    found = inspect_image(data)  # recorded by every run (made after the download, like the thumbnail)
    row.update(phash=found.phash, flags=found.flag_text)
    if thumbnails:
        make_thumbnail(out, rel)


def _write_csvs(out: Path, rows: list[dict[str, Any]]) -> None:
    header = columns(["subject", "guidance", "style"], [*BASE_INPUTS, *EDIT_INPUTS[:1], "safety_tolerance"])
    with open(out / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, header, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in header})
    kinds = {"input_num_inference_steps": "int", "input_guidance": "float", "input_safety_tolerance": "int"}
    with MetadataWriter(out / "metadata.parquet", header, kinds) as metadata:
        for row in rows:
            if row["status"] == "succeeded":
                metadata.add({k: (None if row.get(k) in ("", None) else row[k]) for k in header})


def _write_run_json(out: Path, syn: Synthetic, finished: bool) -> None:
    counts: dict[str, int] = {}
    for row in syn.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    cost = sum(float(r["cost_usd"]) for r in syn.rows if r.get("cost_usd") not in ("", None))
    run = {
        "flux_batch_version": "0.1.0",
        "manifest": {
            "path": str(out.parent / "sweep.yaml"),
            "sha256": "0" * 64,
            "document": {"version": 1, "name": "synthetic sweep"},
        },
        "plan": {},
        "stages": [
            {
                "id": "base",
                "model": DEV,
                "needs": [],
                "vars": ["subject", "guidance"],
                "product_axes": ["subject", "guidance"],
            },
            {
                "id": "edit",
                "model": KONTEXT,
                "needs": ["base"],
                "vars": ["subject", "guidance", "style"],
                "product_axes": ["style"],
            },
        ],
        "summary": {
            "counts": counts,
            "jobs": len({r["job_id"] for r in syn.rows}),
            "images": sum(1 for r in syn.rows if r["status"] == "succeeded"),
            "cost_usd": round(cost, 4),
            "wall_time_s": 83.4,
            "started_at": "2025-01-01T00:00:00Z",
            "finished_at": "2025-01-01T00:01:23Z" if finished else None,
            "api_calls": {
                "create": len(syn.rows),
                "get": 3,
                "list": 0,
                "cancel": 0,
                "upload": 0,
                "download": len(syn.rows),
            },
            "throttled_429": 2,
            "retries": 1,
            "possible_duplicates": 0,
            "create_rate_per_min": 587.5,
        },
    }
    (out / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
