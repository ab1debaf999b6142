"""Export throughput and peak memory per format, next to a plain copy of the same files.

    python bench/export.py [--images 10000 100000] [--formats webdataset parquet imagefolder]
    python bench/export.py --verify [--images 10000]


For each size, builds a finished output folder straight into the state (the tests' fixture: seeded
64 x 64 PNGs of about 12 kB, phash and flags recorded), then times, each in its own process: a plain copy
of the images folder (``cp -r``: the physical floor), and ``flux-batch export`` in each format. Prints
wall seconds, images per second, the ratio to the copy, and the child's peak RSS (its own high-water
mark, ``ru_maxrss``). Each export is deleted before the next, so the disk holds one at a time.

``--verify`` checks the issue's "done when" at that size instead of timing: a folder with a few seeded bad
samples and near-duplicates (0.1% each), exported twice per format by the command (the two trees
compared file by file), then read back by each format's own reader (``webdataset``; ``pyarrow`` and
``datasets``' ``parquet`` builder; ``datasets``' ``imagefolder`` builder): the sample count, every image's
sha256 against the one the folder recorded, and the bad samples left out. It exits non-zero on a mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from export_folder import Folder, build_folder

FORMATS = ("webdataset", "parquet", "imagefolder")


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``command`` in a child process."""
    start = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, dict(os.environ))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return wall, usage.ru_maxrss / 1024


def tree_digest(root: Path) -> tuple[int, str]:
    """The number of files under ``root`` and one sha256 over their relative paths and bytes."""
    digest, count = hashlib.sha256(), 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        count += 1
    return count, digest.hexdigest()


def read_back(fmt: str, to: Path) -> dict[str, list[tuple[str, str]]]:
    """``reader -> [(key, sha256 of the image bytes)]`` for every reader of ``fmt``."""
    from datasets import Image, load_dataset

    data = to / "data"
    out: dict[str, list[tuple[str, str]]] = {}
    if fmt == "webdataset":
        import webdataset as wds

        shards = sorted(str(p) for p in data.glob("*.tar"))
        out["webdataset"] = [  # a sample whose JSON names another key counts as unexpected
            (s["__key__"] if json.loads(s["json"])["key"] == s["__key__"] else f"{s['__key__']}?",
             hashlib.sha256(s["png"]).hexdigest())
            for s in wds.WebDataset(shards, shardshuffle=False)
        ]  # fmt: skip
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        out["pyarrow"] = [
            (row["key"], hashlib.sha256(row["image"]["bytes"]).hexdigest())
            for path in sorted(data.glob("*.parquet"))
            for row in pq.read_table(path, columns=["key", "image"]).to_pylist()
        ]
        files = sorted(str(p) for p in data.glob("*.parquet"))
        ds = load_dataset("parquet", data_files=files, split="train")
        ds = ds.cast_column("image", Image(decode=False)).select_columns(["key", "image"])
        out["datasets"] = [(r["key"], hashlib.sha256(r["image"]["bytes"]).hexdigest()) for r in ds]
    else:
        ds = load_dataset("imagefolder", data_dir=str(data), split="train")
        ds = ds.cast_column("image", Image(decode=False)).select_columns(["key", "image"])
        out["datasets"] = [
            (r["key"], hashlib.sha256(Path(r["image"]["path"]).read_bytes()).hexdigest()) for r in ds
        ]
    return out


def verify(n: int, formats: list[str]) -> int:
    """Repeat exports byte-identical and read back right by each reader, at ``n`` images; 0 when all hold."""
    bad = max(1, n // 1000)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-export-verify-") as tmp:
        root = Path(tmp)
        os.environ["HF_DATASETS_CACHE"] = str(root / "hf-cache")  # datasets' Arrow copies, removed after
        start = time.perf_counter()
        folder: Folder = build_folder(root / "run", n, blank=bad, wrong_size=bad, duplicates=bad)
        print(f"{n:,} images ({bad} blank, {bad} wrong size, {bad} near-duplicates) built in "
              f"{time.perf_counter() - start:.0f} s; {len(folder.good):,} to export")  # fmt: skip
        expected = {k: folder.sha256[k] for k in folder.good}
        for fmt in formats:
            digests = []
            for copy in ("a", "b"):
                command = ["flux-batch", "export", str(root / "run"), "--format", fmt,
                           "--to", str(root / fmt / copy), "--quiet"]  # fmt: skip
                wall, _ = timed(command)
                digests.append((*tree_digest(root / fmt / copy), wall))
            (files, first, wall_a), (_, second, wall_b) = digests
            same = first == second
            failures += not same
            verdict = "byte-identical" if same else "DIFFERENT"
            print(f"{fmt}: 2 exports ({wall_a:.1f} s, {wall_b:.1f} s), {files:,} files, {verdict} "
                  f"(sha256 of the tree {first[:16]})")  # fmt: skip
            shutil.rmtree(root / fmt / "b")
            for reader, samples in read_back(fmt, root / fmt / "a").items():
                got = dict(samples)
                ok = len(samples) == len(got) == len(expected) and got == expected
                failures += not ok
                wrong = sum(got.get(k) != v for k, v in expected.items())
                print(f"  {reader}: {len(samples):,} samples, {wrong:,} missing or not matching the "
                      f"recorded sha256, {len(set(got) - set(expected)):,} unexpected: "
                      f"{'ok' if ok else 'FAILED'}")  # fmt: skip
            shutil.rmtree(root / fmt)
    print("all checks passed" if not failures else f"{failures} check(s) FAILED")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", help="sizes (default 10000 100000; --verify: 10000)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument(
        "--verify", action="store_true", help="check repeat exports and each reader instead of timing"
    )
    parser.add_argument("--build", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_folder(Path(args.build[0]), int(args.build[1]))
        return
    if args.verify:
        raise SystemExit(verify((args.images or [10_000])[0], args.formats))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for n in args.images or [10_000, 100_000]:
        with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            # Built by a child: this process stays small, so its children's peak RSS is their own (Linux
            # keeps a process's high-water mark across exec, starting from its parent's).
            subprocess.run([sys.executable, __file__, "--build", str(root / "run"), str(n)], check=True)
            size = sum(p.stat().st_size for p in (root / "run" / "images").rglob("*") if p.is_file())
            print(f"\n{n:,} images ({size / 1e6:,.0f} MB) built in {time.perf_counter() - start:.0f} s")
            subprocess.run(["sync"], check=True)
            copy_wall, copy_rss = timed(["cp", "-r", str(root / "run" / "images"), str(root / "copy")])
            shutil.rmtree(root / "copy")
            print(f"{'plain copy (cp -r)':<22} {copy_wall:7.1f} s {n / copy_wall:9,.0f} images/s   1.00x"
                  f" {copy_rss:7.0f} MB")  # fmt: skip
            for fmt in args.formats:
                subprocess.run(["sync"], check=True)
                to = root / fmt
                command = [sys.executable, "-m", "flux_batch", "export", str(root / "run"), "--format", fmt,
                           "--to", str(to), "--quiet"]  # fmt: skip
                wall, rss = timed(command)
                shutil.rmtree(to)
                ratio = copy_wall / wall
                print(
                    f"{'export ' + fmt:<22} {wall:7.1f} s {n / wall:9,.0f} images/s {ratio:6.2f}x"
                    f" {rss:7.0f} MB"
                )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
