"""A finished output folder of any size, written straight into the state (no simulator run): for the
export tests and bench/export.py. Each image is a small seeded picture (distinct bytes and hashes) with
its sha256, size, perceptual hash and flags recorded as a run records them; ``blank``, ``wrong_size``
and ``duplicates`` add black images, 16:9 images for 1:1 requests and re-encoded copies."""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from runner_harness import SCHNELL, make_job

from flux_batch.outputs.layout import image_dir, image_stem
from flux_batch.outputs.quality import inspect_image
from flux_batch.outputs.tables import write_tables
from flux_batch.runner.state.store import STATE_FILE, Store

SIZE = (64, 64)


def picture(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    """Seeded noise over a gradient, as PNG: every seed its own bytes and its own perceptual hash."""
    rng = random.Random(seed)
    noise = Image.frombytes("L", (8, 8), bytes(rng.randrange(256) for _ in range(64)))
    image = Image.merge("RGB", [noise.resize(size, Image.Resampling.BICUBIC)] * 3)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Folder:
    out: Path
    good: list[str] = field(default_factory=list)  # keys an export keeps by default (no flag), in order
    blank: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)


def build_folder(
    out: Path, n: int, *, blank: int = 0, wrong_size: int = 0, duplicates: int = 0, tables: bool = True
) -> Folder:
    """``n`` succeeded jobs of one stage (1:1 requested), the last ones bad as asked."""
    jobs = [(make_job(SCHNELL, "gen", f"cat {i}", i, aspect_ratio="1:1"), 0.003) for i in range(n)]
    bad_from = n - blank - wrong_size - duplicates
    store = Store.open(out)
    store.begin_ingest()
    for start in range(0, n, 5000):
        store.add_jobs(jobs[start : start + 5000])
    store.prepare_run()  # the tables' columns, as a run records them (the inputs among them)
    store.close()
    folder = Folder(out)
    db = sqlite3.connect(out / STATE_FILE, isolation_level=None)
    db.execute("BEGIN")
    for i, (job, _) in enumerate(jobs):
        key = image_stem(job.id)
        data, size = picture(i), SIZE
        kind = "good"
        if i >= bad_from:
            k = i - bad_from
            if k < blank:
                data, kind = _png(Image.new("RGB", SIZE)), "blank"
            elif k < blank + wrong_size:
                data, size, kind = picture(i, (96, 54)), (96, 54), "wrong_size"
            else:  # the same picture as an earlier good one, at another size
                data, size, kind = picture(k, (80, 80)), (80, 80), "duplicates"
        getattr(folder, kind).append(key)
        if kind == "duplicates":  # kept unless --dedupe
            folder.good.append(key)
        rel = f"{image_dir(job.stage, i)}/{key}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        folder.sha256[key] = sha
        found = inspect_image(data)
        db.execute(
            "INSERT INTO outputs (job_id, idx, file_name, sha256, bytes, width, height, phash, flags)"
            " VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, rel, sha, len(data), *size, found.phash, found.flag_text),
        )
    db.execute("UPDATE jobs SET status = 'succeeded', attempts = 1, prediction_id = NULL")
    db.execute("COMMIT")
    db.close()
    if tables:
        store = Store.open(out)
        write_tables(store, out)
        store.close()
    return folder


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
