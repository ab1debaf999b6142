"""flux-batch at 100,000 jobs: a run, a resume, ``status`` and the report, each a real command.

    python bench/scale.py [--generations 25000] [--parts run,resume,report] [--browser]

The manifest is the scale test's (tests/scale_run.py): three stages, 4 jobs per generation (a generation,
two edits of it, an edit of one edit), prompts full of words a loader could misread. The simulator is
served on loopback in its own process (``flux-batch simulate``, latency 0.05 s, no rate limit, the scale
test's faults), and every flux-batch command runs as ``flux-batch ...`` in a child process, so each
figure is that process alone: its wall time, its peak RSS (the kernel's high-water mark) and its CPU;
``tree_peak_rss_mb`` is the peak of its RSS and its child processes' (image workers, the tables' writer)
summed, sampled every 0.25 s.

Parts:

- ``run``: a whole run from nothing. Wall time, peak RSS, and the cost per job in each tenth of the jobs
  (CPU seconds and wall seconds between the completion of 10 % of them, from samples taken every 2 s),
  so that the first and last tenths can be compared; then the folder's invariants (tests/scale_run.py).
- ``report``: ``flux-batch report`` on that folder: wall, peak RSS, report.html's and the parts' size;
  with ``--browser``, Debian's chromium opening the page from file:// (time to a drawn grid, JS heap),
  then the table of every row.
- ``resume``: a second run from nothing, interrupted (SIGINT, as Ctrl-C; ``--stop kill``: SIGKILL, as a
  crash) once 90 % of its jobs are done; ``flux-batch status`` on it (three times); then the resume: time
  from its start to its first create (the first intent it records) and its peak RSS at that moment, then
  to its end. The stopped folder is kept as ``resume/stopped`` under ``--dir``; ``--resume-from`` that
  folder times the resume again on a copy of it (modification times kept), without the first run.
  ``--edit`` adds one value to the first stage's ``style`` axis before the resume (an edited manifest: the
  state's jobs are not trusted, every job is expanded and loaded again, and the new jobs are counted as
  to do); ``--until-first-create`` stops the resume (SIGKILL) at its first create instead of running it to
  its end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import CLK_TCK, SERVE, Simulator, tree_rss_kb
from scale_run import FAULTS, check_folder, manifest_text

from flux_batch import load

CLI = [sys.executable, "-c", SERVE]
TERMINAL = ("succeeded", "failed", "canceled", "aborted", "expired", "skipped", "download_failed")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def fault_flags() -> list[str]:
    return [arg for f in FAULTS for arg in ("--fault", f"{f.kind}:{f.probability}")]


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def done_count(out: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{out / 'state.db'}?mode=ro", uri=True, timeout=5)
        try:
            marks = ",".join("?" * len(TERMINAL))
            return int(
                db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", TERMINAL).fetchone()[0]
            )
        finally:
            db.close()
    except sqlite3.Error:
        return 0


class Child:
    """A flux-batch command in a child process, sampled every ``every`` seconds: (t, CPU s, done jobs)."""

    def __init__(self, args: list[str], out: Path | None = None, every: float = 2.0) -> None:
        env = {**os.environ, "REPLICATE_API_TOKEN": "r8_bench"}
        # A user's installation has its modules' bytecode (pip compiles it, an editable one writes it on
        # first use): with PYTHONDONTWRITEBYTECODE set, as some sandboxes do, an editable install would
        # compile flux-batch's modules again in every command (0.1-0.2 CPU s of each start-up here).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.out, self.every = out, every
        self.samples: list[tuple[float, float, int]] = []
        self.stop_at: int | None = None
        self.stop_signal = signal.SIGINT
        self.hwm_kb = 0
        self.tree_kb = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        due = 0.0
        while self._running():
            now = time.perf_counter() - self.t0
            try:
                self.hwm_kb = max(self.hwm_kb, proc_kb(self.proc.pid, "VmHWM"))
                self.tree_kb = max(self.tree_kb, tree_rss_kb(self.proc.pid))
                cpu = proc_cpu(self.proc.pid)
            except OSError:
                return
            if now >= due:
                due = now + self.every
                done = done_count(self.out) if self.out else 0
                self.samples.append((now, cpu, done))
                if self.stop_at is not None and done >= self.stop_at:
                    self.proc.send_signal(self.stop_signal)
                    self.stop_at = None
            time.sleep(0.25)

    def _running(self) -> bool:
        # Looks without reaping (WNOWAIT): wait() reaps the child itself, to read its rusage; a poll()
        # here could reap it first and leave wait4 with no child (a short `status` lost that race).
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def wait(self) -> dict[str, Any]:
        if self.proc.returncode is None:  # else reaped already by Popen
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        else:
            cpu = self.samples[-1][1] if self.samples else float("nan")
        wall = time.perf_counter() - self.t0
        self._thread.join(timeout=5)
        stderr = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        return {
            "exit": self.proc.returncode,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            # The kernel's high-water mark of the child's own image, sampled every 0.25 s: the rusage
            # figure counts the pages the child shared with this process before it ran flux-batch.
            "peak_rss_mb": round(self.hwm_kb / 1024, 1),
            # With its child processes (image workers, the tables' writer): their RSS summed, sampled.
            "tree_peak_rss_mb": round(self.tree_kb / 1024, 1),
            "stderr_tail": stderr[-400:],
        }


def per_tenth(samples: list[tuple[float, float, int]], total: int) -> list[dict[str, float]]:
    """CPU and wall milliseconds per job in each tenth of the jobs, interpolated between samples."""

    def at(done: float, index: int) -> float:
        for (t0, *a), (t1, *b) in itertools.pairwise(samples):
            if a[1] <= done <= b[1] and b[1] > a[1]:
                f = (done - a[1]) / (b[1] - a[1])
                return [t0, a[0]][index] + f * ([t1, b[0]][index] - [t0, a[0]][index])
        return float("nan")

    out = []
    first = next((d for _, _, d in samples if d > 0), 1)
    for k in range(10):
        lo, hi = max(first, total * k / 10), total * (k + 1) / 10
        n = hi - lo
        out.append({
            "cpu_ms_per_job": round((at(hi, 1) - at(lo, 1)) / n * 1000, 2),
            "wall_ms_per_job": round((at(hi, 0) - at(lo, 0)) / n * 1000, 2),
        })  # fmt: skip
    return out


def run_part(sim: Simulator, folder: Path, manifest: Path, jobs: int) -> dict[str, Any]:
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    child = Child(run_args(manifest, out, sim), out)
    result = child.wait()
    result["tenths"] = per_tenth(child.samples, jobs)
    result["done"] = done_count(out)
    figures = check_folder(out, load(manifest))
    figures.pop("db").close()
    result["invariants"] = {"ok": True, **figures}
    return result


def run_args(manifest: Path, out: Path, sim: Simulator) -> list[str]:
    return ["run", str(manifest), "--out", str(out), "--base-url", f"{sim.base}/v1", "--yes", "--quiet",
            "--create-rpm", "1000000", "--other-rpm", "1000000", "--max-in-flight", "100"]  # fmt: skip


def report_part(folder: Path, browser: bool) -> dict[str, Any]:
    out = folder / "out"
    result = Child(["report", str(out)]).wait()
    page = out / "report.html"
    result["report_html_mb"] = round(page.stat().st_size / 1e6, 2)
    parts = [p for p in (out / ".report").rglob("*.js")]
    result["parts"] = len(parts)
    result["parts_mb"] = round(sum(p.stat().st_size for p in parts) / 1e6, 1)
    if browser:
        result["browser"] = browser_figures(page)
    return result


def browser_figures(page: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=CHROMIUM_ARGS)  # fmt: skip
        tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
        cdp = tab.context.new_cdp_session(tab)
        cdp.send("Performance.enable")

        def heap() -> float:
            metrics = cdp.send("Performance.getMetrics")["metrics"]
            return round(next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize") / 1e6, 1)

        start = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_selector("body[data-ready='1']", timeout=120_000)
        figures["open to drawn grid (s)"] = round(time.perf_counter() - start, 2)
        figures["JS heap, grid (MB)"] = heap()
        start = time.perf_counter()
        tab.click("#tab-table")
        counted = "() => /of [\\d,]+ rows/.test(document.getElementById('table-count')?.textContent || '')"
        tab.wait_for_function(counted, timeout=300_000)
        figures["table of every row (s)"] = round(time.perf_counter() - start, 2)
        figures["JS heap, every row (MB)"] = heap()
        chromium.close()
    return figures


def edited(text: str) -> str:
    """The scale manifest with one more value on the first stage's ``style`` axis."""
    styles = text.split("style: ", 1)[1].split("\n", 1)[0]
    values = json.loads(styles)
    return text.replace(styles, json.dumps([*values, f"style {len(values)}"]), 1)


def resume_part(
    sim: Simulator,
    folder: Path,
    manifest: Path,
    jobs: int,
    stop: str,
    source: Path | None,
    keep: bool,
    *,
    edit: bool = False,
    until_first_create: bool = False,
) -> dict[str, Any]:
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    figures: dict[str, Any] = {}
    if source is None:
        first = Child(run_args(manifest, out, sim), out, every=0.5)
        first.stop_at = int(jobs * 0.9)
        first.stop_signal = signal.SIGKILL if stop == "kill" else signal.SIGINT
        figures["stopped_run"] = {k: v for k, v in first.wait().items() if k != "stderr_tail"}
        figures["stopped_by"] = first.stop_signal.name
        if keep:
            shutil.rmtree(folder / "stopped", ignore_errors=True)
            shutil.copytree(out, folder / "stopped")  # copy2: modification times kept
    else:
        shutil.copytree(source, out)  # times kept: the resume trusts a file whose size and time match
        figures["resumed_from"] = str(source)
    figures["done_before_resume"] = done_count(out)
    status = [Child(["status", str(out)]).wait() for _ in range(3)]
    if edit:
        manifest.write_text(edited(manifest.read_text(encoding="utf-8")), encoding="utf-8")
        figures["edited"] = "one value added to the first stage's style axis"
    figures["load_average_at_resume"] = os.getloadavg()
    resume = Child(run_args(manifest, out, sim), None, every=3600)
    first_create, hwm, cpu = None, 0, 0.0
    while resume._running() and first_create is None:
        db = sqlite3.connect(f"file:{out / 'state.db'}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute(
                "SELECT MIN(intent_at) FROM attempts WHERE intent_at >= ?", (resume.started,)
            ).fetchone()
        except sqlite3.Error:
            row = (None,)
        finally:
            db.close()
        if row[0] is not None:
            first_create = row[0] - resume.started
            hwm, cpu = proc_kb(resume.proc.pid, "VmHWM"), proc_cpu(resume.proc.pid)
            if until_first_create:
                resume.proc.kill()
        time.sleep(0.05)
    end = resume.wait()
    return {
        **figures,
        "status_wall_s": [s["wall_s"] for s in status],
        "status_peak_rss_mb": max(s["peak_rss_mb"] for s in status),
        "resume_first_create_s": round(first_create, 2) if first_create is not None else None,
        "resume_peak_rss_at_first_create_mb": round(hwm / 1024, 1),
        "resume_cpu_s_at_first_create": round(cpu, 2),
        "resume": end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=25_000, help="4 jobs each (default 25,000)")
    parser.add_argument("--parts", default="run,report,resume")
    parser.add_argument("--browser", action="store_true", help="open the report in chromium")
    parser.add_argument("--dir", help="work in this folder (kept) instead of a temporary one")
    parser.add_argument("--stop", choices=("interrupt", "kill"), default="interrupt", help="resume part")
    parser.add_argument("--resume-from", type=Path, help="a stopped folder of this manifest to resume")
    parser.add_argument("--edit", action="store_true", help="resume with one value added to an axis")
    parser.add_argument(
        "--until-first-create", action="store_true", help="stop the resume at its first create"
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    root = Path(args.dir or tempfile.mkdtemp(prefix="flux-batch-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "scale.yaml"
    manifest.write_text(manifest_text(args.generations), encoding="utf-8")
    jobs = sum(1 for _ in _expand(manifest))
    results: dict[str, Any] = {"jobs": jobs, "load_average_before": os.getloadavg(), "cpus": os.cpu_count()}
    print(json.dumps(results), flush=True)
    simulator = Simulator(["--latency", "0.05", "--create-rpm", "0", "--other-rpm", "0", *fault_flags()])
    with simulator as sim:
        if "run" in parts:
            results["run"] = run_part(sim, root / "run", manifest, jobs)
            print(json.dumps({"run": results["run"]}), flush=True)
        if "report" in parts:
            results["report"] = report_part(root / "run", args.browser)
            print(json.dumps({"report": results["report"]}), flush=True)
        if "resume" in parts:
            results["resume"] = resume_part(
                sim,
                root / "resume",
                manifest,
                jobs,
                args.stop,
                args.resume_from,
                keep=bool(args.dir),
                edit=args.edit,
                until_first_create=args.until_first_create,
            )
            print(json.dumps({"resume": results["resume"]}), flush=True)
    results["load_average_after"] = os.getloadavg()
    results["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


def _expand(manifest: Path) -> Any:
    from flux_batch.jobs.expand import expand

    return expand(load(manifest))


if __name__ == "__main__":
    main()
