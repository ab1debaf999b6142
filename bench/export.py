"""Export throughput and peak memory per format, next to a plain copy of the same files.

    python bench/export.py [--images 10000 100000] [--formats webdataset parquet imagefolder]

For each size, builds a finished output folder straight into the state (the tests' fixture: seeded
64 x 64 PNGs of about 12 kB, phash and flags recorded), then times, each in its own process: a plain copy
of the images folder (``cp -r``: the physical floor), and ``flux-batch export`` in each format. Prints
wall seconds, images per second, the ratio to the copy, and the child's peak RSS (its own high-water
mark, ``ru_maxrss``). Each export is deleted before the next, so the disk holds one at a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from export_folder import build_folder

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--build", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_folder(Path(args.build[0]), int(args.build[1]))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for n in args.images:
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
