"""Wall time and peak memory of ``flux-batch plan --json`` on generated manifests of 10k, 100k, 1M jobs.

Each size runs in its own subprocess (so peak RSS is that run's alone). The generated manifest is one
flux-schnell stage with a prompt template over three product axes (every job's input is still checked).

    python bench/plan_scale.py                 # 10k, 100k, 1M
    python bench/plan_scale.py 10000 100000    # chosen sizes
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10_000, 100_000, 1_000_000)


def manifest_text(jobs: int) -> str:
    """A manifest of exactly ``jobs`` jobs (a multiple of 400): subjects x 100 styles x 4 aspect ratios."""
    subjects = jobs // 400
    return f"""version: 1
name: scale-{jobs}
max_jobs: {jobs}
stages:
  - id: gen
    model: black-forest-labs/flux-schnell
    prompt: "subject {{subject}} in style {{style}}"
    input: {{megapixels: "0.25", output_format: webp}}
    matrix:
      subject: {{range: {{start: 1, stop: {subjects}}}}}
      style: {{range: {{start: 1, stop: 100}}}}
      aspect_ratio: ["1:1", "16:9", "3:2", "2:3"]
"""


def measure(jobs: int) -> dict[str, float]:
    """Run ``plan --json`` on a ``jobs``-job manifest in a child process; return its time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"scale-{jobs}.yaml"
        path.write_text(manifest_text(jobs))
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "flux_batch", "plan", "--json", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        plan = json.loads(result.stdout)
        assert plan["jobs"] == jobs, plan["jobs"]
    return {"jobs": jobs, "wall_s": wall, "peak_rss_mib": peak_kib / 1024}


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"{'jobs':>10} {'wall s':>8} {'peak RSS MiB':>13}")
    for jobs in sizes:
        # RUSAGE_CHILDREN reports the largest child so far: run sizes in increasing order
        row = measure(jobs)
        print(f"{row['jobs']:>10,} {row['wall_s']:>8.2f} {row['peak_rss_mib']:>13.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
