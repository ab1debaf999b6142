"""Benchmark of the runner against the simulator served on loopback, and of the official `replicate`
client on the same batch.

    python bench/runner.py [--jobs 3000] [--burst 10] [--overhead-jobs 5000] [--memory-jobs 100000]
                           [--parts limit,replicate,faults,overhead,memory] [--max-in-flight 200]
                           [--replicate-concurrency 100]

Every scenario starts ``flux-batch simulate`` in its own process (uvicorn on a free loopback port) and
runs the client in another process, so neither one's CPU counts against the other's; the parent reads
the server's request counts from ``/_simulator/stats``, the creation times of its predictions from
``GET /v1/predictions``, and both processes' CPU time. Jobs are flux-schnell, 0.25 megapixel JPEG (the
cheapest image for the simulator to render, so the server keeps up on a small machine), one output each.

Scenarios (``--parts``):

- ``limit``: flux-batch, simulator and runner both at ``--create-rpm`` (6,000/min) with ``--latency``
  (1 s) predictions: the achieved create rate against the limit, wall time against the ideal
  (jobs / rate + latency), API calls per job, 429s.
- ``replicate``: the same batch through ``replicate.Client.async_run`` under an asyncio semaphore, as
  its documentation suggests, downloading each output with ``FileOutput.aread``.
- ``faults``: both tools again with ``--faults`` (default 2 % html_5xx, 1 % ambiguous_create).
- ``overhead``: flux-batch with no limit on either side and zero latency: jobs per second end to end
  and the runner process's CPU per job, with thumbnails (a user's run) and without; and the replicate
  client on the same batch (create + download, nothing else) as the floor of httpx itself.
- ``transports``: flux-batch without thumbnails, no limit, over each of ``--transports`` (httpcore is
  httpx's own transport, aiohttp the one ``flux-batch run`` uses), to compare them in one run.
- ``memory``: the overhead configuration at ``--memory-jobs`` (100,000), its report written at the end as
  ``flux-batch run`` does, for the runner's peak RSS, its child processes' (image workers, the tables'
  writer, multiprocessing's resource tracker: each one's peak) and that of all its processes together
  (their RSS summed at one instant, sampled every 0.2 s; ``--memory-timeline`` keeps every sample).

``--before SOURCE`` adds the limit part's flux-batch run and the overhead part's two on another checkout's
code (SOURCE holds its ``flux_batch/``), so two versions are compared in one invocation. Since #15 the
thumbnails and quality values are made in worker processes (and, at a run's end, in the runner's idle
threads): their CPU is shown apart (*images CPU*), the runner's own is *client CPU*.

Figures: *create-phase rate* = (creates - 1) / (last created_at - first created_at), from the server's
own timestamps of the predictions it created; *steady rate* = the same over the middle 90 % of creates
(from the 5th to the 95th percentile by order), which leaves out the opening burst and the tail; *whole
run* = images delivered / wall time of the run (ingest to the last image on disk). API calls per job are the
server's counts of every request to that endpoint (throttled and failed ones included) / jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

MODEL = "black-forest-labs/flux-schnell"
TOKEN = "r8_bench"
SERVE = "import sys; from flux_batch.cli import main; sys.exit(main(sys.argv[1:]))"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def job_input(i: int) -> dict[str, Any]:
    """The i-th job's input, the same for both tools."""
    return {
        "prompt": f"a lighthouse at dusk, variation {i}",
        "seed": i,
        "megapixels": "0.25",
        "output_format": "jpg",
    }


# -- child processes: the clients under test ---------------------------------------------------------


def _usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def _jobs(n: int) -> Iterator[tuple[Any, float | None]]:
    from flux_batch.jobs import Job
    from flux_batch.jobs.ids import job_id
    from flux_batch.models.catalog import get_model

    price = get_model(MODEL).price_usd
    for i in range(n):
        inp = job_input(i)
        job = Job(id=job_id(MODEL, None, inp), stage="bench", model=MODEL, version=None, input=inp,
                  vars={"i": i}, slug="lighthouse")  # fmt: skip
        yield job, price


def transport_client(name: str, max_in_flight: int) -> httpx.AsyncClient:
    """The client ``flux-batch run`` builds (``aiohttp``), or httpx over httpcore, its own transport, with
    the same connection limits (``httpcore``)."""
    from flux_batch.runner.http_client import HEADROOM, http_client

    if name == "aiohttp":
        return http_client(max_in_flight)
    total = max_in_flight + HEADROOM
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(limits=limits), follow_redirects=True)


async def child_flux_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """One run of ``run_jobs`` set up as ``flux-batch run`` sets it up (httpx pool, limits, settings)."""
    from flux_batch.runner.executor import RunSettings
    from flux_batch.runner.session import ApiTarget, run_jobs

    settings = RunSettings(out_dir=Path(spec["out"]), max_in_flight=spec["max_in_flight"], wait=60)
    target = ApiTarget(
        spec["base"] + "/v1",
        TOKEN,
        create_rpm=spec["create_rpm"],
        other_rpm=spec["other_rpm"],
        burst=spec.get("burst", 10),
    )
    _count_ended_workers()
    # the memory part: every process of the run
    tree = TreeMemory(timeline=spec.get("timeline")) if spec.get("report") else None
    async with transport_client(spec.get("transport", "aiohttp"), spec["max_in_flight"]) as http:
        traced = _traced(spec, http)
        cpu0, _ = _usage()
        t0 = time.perf_counter()
        session = await run_jobs(
            _jobs(spec["jobs"]),
            settings,
            target,
            http,
            thumbnails=spec["thumbnails"],
            report=spec.get("report", False),
        )
        wall = time.perf_counter() - t0
        cpu1, rss = _usage()
    memory = tree.stop() if tree is not None else {}
    if traced is not None:
        (Path(spec["trace"]) / "client.json").write_text(json.dumps(traced))
    lost = {k: v for k, v in session.counts.items() if k != "succeeded" and v}
    s = session.summary
    return {
        "wall_s": wall,
        "cpu_s": cpu1 - cpu0 - _image_cpu_here(),  # the runner's own; its images' apart
        "maxrss_mib": rss,
        "delivered": session.counts.get("succeeded", 0),
        "images": session.images,
        "lost": lost,
        "client_429": s.get("throttled_429", 0),
        "retries": s.get("retries", 0),
        "reattached": s.get("reattached", 0),
        "possible_duplicates": s.get("possible_duplicates", 0),
        "image_cpu_s": _image_workers_cpu() + _image_cpu_here(),
        **memory,
    }


def _traced(spec: dict[str, Any], http: httpx.AsyncClient) -> dict[str, Any] | None:
    """``--trace``: every create of this run traced (bench/pace_trace.py), or None."""
    if not spec.get("trace"):
        return None
    import pace_trace

    return pace_trace.install_client(http)


class TreeMemory:
    """Samples, every ``every_s`` seconds in a thread, the RSS of this process and of each of its
    descendants (the image workers, the process writing the tables, multiprocessing's resource tracker):
    the peak of their sum at one instant (each sample reads every process once, a few milliseconds apart),
    and each process's own peak, by role (its kernel high-water mark, ``VmHWM``, read at each sample, so a
    peak between two samples is not missed). With ``timeline``, every sample is also written there as a
    line of JSON (seconds since the start, kB per process), to see when each peak comes."""

    def __init__(self, every_s: float = 0.2, timeline: str | None = None) -> None:
        import threading

        self.peak_kb = 0
        self.peak_at = 0.0
        self.roles: dict[str, int] = {}  # role -> peak kB (the largest high-water mark seen)
        self._every = every_s
        self._t0 = time.monotonic()
        self._timeline = open(timeline, "w") if timeline else None  # noqa: SIM115 (closed by stop)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.sample()

    def sample(self) -> None:
        here = os.getpid()
        now: dict[str, int] = {}
        total = 0
        for pid in _tree(here):
            rss, hwm = _rss_kb(pid)
            role = _role(pid, here)
            now[f"{role}:{pid}"] = rss
            total += rss
            self.roles[role] = max(self.roles.get(role, 0), hwm)
        at = time.monotonic() - self._t0
        if total > self.peak_kb:
            self.peak_kb, self.peak_at = total, at
        if self._timeline is not None:
            self._timeline.write(json.dumps({"t": round(at, 2), "sum": total, **now}) + "\n")

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        self.sample()
        if self._timeline is not None:
            self._timeline.close()
        return {
            "tree_peak_mib": self.peak_kb / 1024,
            "tree_peak_at_s": self.peak_at,
            "process_peaks_mib": {role: kb / 1024 for role, kb in sorted(self.roles.items())},
        }


def _role(pid: int, here: int) -> str:
    """What process ``pid`` of the run is: the run's own, an image worker or the helper of its last images,
    the tables' writer, or multiprocessing's resource tracker (told apart by its command line)."""
    if pid == here:
        return "run"
    try:
        from flux_batch.outputs import derived

        if pid in (getattr(derived._POOL, "_processes", None) or {}):
            return "image worker"
        if pid in (getattr(getattr(derived, "_HELPER", None), "_processes", None) or {}):
            return "image helper"  # the run's last images, since the memory work of #15
    except ImportError:
        pass
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"resource_tracker" in command:
        return "resource tracker"
    return "tables" if b"multiprocessing" in command else "other"


def tree_rss_kb(pid: int) -> int:
    """The RSS of process ``pid`` and of all its descendants, summed, in kB (0 for a process gone)."""
    return sum(_rss_kb(p)[0] for p in _tree(pid))


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def _rss_kb(pid: int) -> tuple[int, int]:
    """Process ``pid``'s RSS and its peak RSS (``VmHWM``), in kB ((0, 0) for a process gone)."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def _image_cpu_here() -> float:
    """CPU seconds this process's threads gave to thumbnails and quality values (since #15, only the last
    images of a run, while its event loop is idle; before, all of them: not counted apart then)."""
    try:
        from flux_batch.outputs import derived
    except ImportError:
        return 0.0
    return float(getattr(derived, "cpu_s", 0.0))


_ENDED_WORKERS_CPU = [0.0]


def _image_workers_cpu() -> float:
    """CPU seconds of the worker processes that made the thumbnails and quality values, out of the
    runner's process since #15 (0 for code that makes them in the runner's process): those alive, and
    those a run ended (read just before, see :func:`_count_ended_workers`)."""
    try:
        from flux_batch.outputs import derived
    except ImportError:
        return 0.0
    total = _ENDED_WORKERS_CPU[0]
    for name in ("_POOL", "_HELPER"):  # the niced workers, and the helper of a run's end
        for pid in list(getattr(getattr(derived, name, None), "_processes", None) or {}):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _count_ended_workers() -> None:
    """A run ends its image workers before it returns (since the memory work of #15): count their CPU
    just before it does."""
    from flux_batch.runner import session

    end = getattr(session, "end_shared_pool", None)
    if end is None:  # code that keeps its workers: they are read after the run
        return

    def counted() -> None:
        _ENDED_WORKERS_CPU[0] = _image_workers_cpu()  # those ended before, and these
        end()

    session.end_shared_pool = counted  # type: ignore[attr-defined]


async def child_replicate(spec: dict[str, Any]) -> dict[str, Any]:
    """The batch the way the replicate client's documentation suggests: a task per input, a semaphore,
    ``await client.async_run(...)``, then each output's bytes written to a file."""
    import replicate
    from replicate.exceptions import ModelError, ReplicateError
    from replicate.helpers import FileOutput

    client = replicate.Client(api_token=TOKEN, base_url=spec["base"])
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    semaphore = asyncio.Semaphore(spec["concurrency"])

    async def one(i: int) -> str:
        async with semaphore:
            try:
                output: Any = await client.async_run(MODEL, input=job_input(i))
                for k, item in enumerate(output):
                    # The client wraps only https: URLs in FileOutput; the simulator's are http:, so wrap
                    # them here to download exactly as the client would from replicate.delivery.
                    file = FileOutput(item, client) if isinstance(item, str) else item
                    (out / f"{i}-{k}.jpg").write_bytes(await file.aread())
            except ModelError:
                return "prediction failed"
            except ReplicateError as exc:
                return f"HTTP {exc.status} on an API call"
            except httpx.HTTPStatusError as exc:
                return f"HTTP {exc.response.status_code} on a download"
            except (httpx.TransportError, ValueError) as exc:  # a dropped connection, an HTML body
                return type(exc).__name__
            return "ok"

    cpu0, _ = _usage()
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(spec["jobs"])))
    wall = time.perf_counter() - t0
    cpu1, rss = _usage()
    lost: dict[str, int] = {}
    for outcome in outcomes:
        if outcome != "ok":
            lost[outcome] = lost.get(outcome, 0) + 1
    return {
        "wall_s": wall,
        "cpu_s": cpu1 - cpu0,
        "maxrss_mib": rss,
        "delivered": outcomes.count("ok"),
        "images": sum(1 for _ in out.iterdir()),
        "lost": lost,
    }


def child_main(spec: dict[str, Any]) -> None:
    run = child_flux_batch if spec["tool"] == "flux-batch" else child_replicate
    print(json.dumps(asyncio.run(run(spec))), flush=True)


# -- the parent: servers, scenarios, figures ---------------------------------------------------------


class Simulator:
    """``flux-batch simulate`` in a subprocess on a free port."""

    def __init__(self, args: list[str], trace: str | None = None) -> None:
        self.args = ["simulate", "--port", "0", "--seed", "1", *args]
        self.code = SERVE
        if trace:  # every create it meters traced (bench/pace_trace.py), written when it stops
            import pace_trace

            here = str(Path(__file__).resolve().parent)
            self.code = pace_trace.SERVE_TRACED.format(bench=here, path=str(Path(trace) / "server.json"))

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code, *self.args], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            match = re.search(r"Replicate style: (\S+)/v1", line)
            if match:
                self.base = match[1]
                return self
        raise RuntimeError(f"the simulator did not start: {self.args}")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.base + "/_simulator/stats", timeout=30).json())

    def created_times(self) -> list[float]:
        """Every prediction's created_at (epoch seconds), oldest first, paging through the list."""
        from datetime import datetime

        times: list[float] = []
        url: str | None = self.base + "/v1/predictions"
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            while url:
                response = client.get(url)
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code >= 500:  # the faults scenario's injected 5xx pages hit us too
                    time.sleep(0.1)
                    continue
                response.raise_for_status()
                page = response.json()
                for p in page["results"]:
                    times.append(datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")).timestamp())
                url = page.get("next")
        return sorted(times)


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    if spec.get("source"):  # another checkout's flux_batch (--before), imported ahead of the installed one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (spec["source"], env.get("PYTHONPATH"))))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {spec['tool']} child failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def classify(requests: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The server's request counts by kind (create, get, list, cancel, upload, download), by status."""
    kinds: dict[str, dict[str, int]] = {}
    for route, codes in requests.items():
        method, path = route.split(" ", 1)
        if path.startswith("/delivery/"):
            kind = "download"
        elif path.endswith("/cancel"):
            kind = "cancel"
        elif "/files" in path:
            kind = "upload"
        elif method == "POST" and path.endswith("/predictions"):
            kind = "create"
        elif path.endswith("/predictions"):
            kind = "list"
        elif path.endswith("/predictions/{id}"):
            kind = "get"
        else:
            kind = "other"
        bucket = kinds.setdefault(kind, {})
        for code, n in codes.items():
            bucket[code] = bucket.get(code, 0) + n
    return kinds


def rates(times: list[float]) -> tuple[float, float, float]:
    """(create-phase rate, steady rate over the middle 90 %, create-phase seconds) from created_at times."""
    if len(times) < 20:
        return 0.0, 0.0, 0.0
    phase = times[-1] - times[0]
    lo, hi = int(len(times) * 0.05), int(len(times) * 0.95)
    steady = (hi - lo) / (times[hi] - times[lo]) if times[hi] > times[lo] else 0.0
    return (len(times) - 1) / phase if phase > 0 else 0.0, steady, phase


def scenario(
    name: str, sim_args: list[str], spec: dict[str, Any], work: Path, timeout: float
) -> dict[str, Any]:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    print(f"running {name} ...", file=sys.stderr, flush=True)
    with Simulator(sim_args, spec.get("trace")) as sim:
        server_cpu0 = sim.cpu_s()
        result = run_child({**spec, "base": sim.base, "out": str(out)}, timeout)
        server_cpu = sim.cpu_s() - server_cpu0
        stats = sim.stats()
        times = sim.created_times() if spec.get("rate") else []
    traced: dict[str, Any] = {}
    if spec.get("trace"):
        import pace_trace

        folder = Path(spec["trace"])
        client, server = (json.loads((folder / f).read_text()) for f in ("client.json", "server.json"))
        traced = pace_trace.analyse(client, server, spec["rate"], spec.get("burst", 10))
        print(f"trace of {name} (kept in {folder}):", file=sys.stderr)
        for key, value in traced.items():
            print(f"  {key}: {value}", file=sys.stderr)
    over = over_the_bucket(out, spec) if spec["tool"] == "flux-batch" and spec.get("rate") else None
    at_send = traced.get("refused if metered at send")
    shutil.rmtree(out, ignore_errors=True)
    phase_rate, steady_rate, phase_s = rates(times)
    return {
        "name": name,
        "tool": spec["tool"],
        "transport": spec.get("transport", "aiohttp"),
        "jobs": spec["jobs"],
        **result,
        "server_cpu_s": server_cpu,
        "kinds": classify(stats["requests"]),
        "created": stats["predictions_created"],
        "duplicates": stats["duplicate_predictions"],
        "throttled": stats["throttled"],
        "faults": stats["faults_fired"],
        "rate": spec.get("rate"),
        "latency": spec.get("latency", 0.0),
        "phase_rate": phase_rate,
        "steady_rate": steady_rate,
        "phase_s": phase_s,
        "over_the_bucket": over,
        "over_at_send": at_send,
    }


def over_the_bucket(out: Path, spec: dict[str, Any]) -> int:
    """How many of flux-batch's create attempts a server's bucket (the limit, ``--burst``) would have
    refused had it metered them at their intent times, from the state database's write-ahead log of
    creates. Until #15's token-after-the-fsync change an intent was recorded right after the create's
    limiter token; since then it is recorded before the token is waited for, and only ``--trace`` tells
    the send times (its "429s if metered at send time")."""
    import sqlite3

    from flux_batch.ratelimit import TokenBucket
    from flux_batch.runner.state.store import STATE_FILE

    db = sqlite3.connect(out / STATE_FILE)
    try:
        sent = [row[0] for row in db.execute("SELECT intent_at FROM attempts ORDER BY intent_at")]
    finally:
        db.close()
    server = TokenBucket(spec["create_rpm"] / 60, spec.get("burst", 10))
    return sum(1 for at in sent if server.take(at) > 0)


def _count(kinds: dict[str, dict[str, int]], kind: str, codes: tuple[str, ...] | None = None) -> int:
    by_code = kinds.get(kind, {})
    return sum(n for code, n in by_code.items() if codes is None or code in codes)


def _errors(kinds: dict[str, dict[str, int]], prefix: str) -> int:
    return sum(n for by_code in kinds.values() for code, n in by_code.items() if code.startswith(prefix))


def figures(r: dict[str, Any]) -> dict[str, str]:
    """One column of the printed table."""
    jobs, kinds = r["jobs"], r["kinds"]
    tool = r["tool"] + (f" ({r['transport']})" if r["tool"] == "flux-batch" else "")
    rows: dict[str, str] = {"tool": tool, "jobs": f"{jobs:,}"}
    rows["delivered (image on disk)"] = f"{r['delivered']:,}"
    lost = r["lost"]
    rows["lost"] = ", ".join(f"{n} {why}" for why, n in sorted(lost.items())) if lost else "0"
    rows["wall s"] = f"{r['wall_s']:.1f}"
    if r["rate"]:
        rate = r["rate"]
        ideal = jobs / rate + r["latency"]
        rows["ideal s (jobs/rate + latency)"] = f"{ideal:.1f}"
        rows["wall / ideal"] = f"{r['wall_s'] / ideal:.3f}"
        rows["create-phase rate / limit"] = f"{r['phase_rate'] / rate:.3f} ({r['phase_rate'] * 60:,.0f}/min)"
        rows["steady rate (mid 90%) / limit"] = f"{r['steady_rate'] / rate:.3f}"
        rows["whole run rate / limit"] = f"{r['delivered'] / r['wall_s'] / rate:.3f}"
    else:
        rows["jobs/s end to end"] = f"{r['delivered'] / r['wall_s']:.0f}"
    for kind in ("create", "get", "list"):
        rows[f"{kind} calls/job"] = f"{_count(kinds, kind) / jobs:.3f}"
    api = sum(_count(kinds, k) for k in ("create", "get", "list", "cancel", "upload"))
    rows["API calls/job (all)"] = f"{api / jobs:.3f}"
    rows["downloads/job"] = f"{_count(kinds, 'download') / jobs:.3f}"
    rows["429s (server)"] = str(r["throttled"])
    if r.get("over_the_bucket") is not None:
        rows["429s if metered at intent time"] = str(r["over_the_bucket"])
    if r.get("over_at_send") is not None:
        rows["429s if metered at send time (--trace)"] = str(r["over_at_send"])
    rows["5xx / dropped (server)"] = f"{_errors(kinds, '5')} / {_errors(kinds, 'dropped')}"
    if r["faults"]:
        rows["faults fired"] = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items()))
    rows["predictions created"] = f"{r['created']:,}"
    rows["duplicate predictions"] = str(r["duplicates"])
    rows["paid, not delivered"] = str(r["created"] - r["duplicates"] - r["delivered"])
    if "reattached" in r:
        rows["reattached after ambiguous create"] = str(r["reattached"])
    rows["client CPU ms/job"] = f"{r['cpu_s'] * 1000 / jobs:.2f}"
    if r.get("image_cpu_s"):
        rows["images CPU ms/job (thumbnails, quality)"] = f"{r['image_cpu_s'] * 1000 / jobs:.2f}"
    rows["client CPU, cores (CPU s / wall s)"] = f"{r['cpu_s'] / r['wall_s']:.2f}"
    rows["server CPU ms/job"] = f"{r['server_cpu_s'] * 1000 / jobs:.2f}"
    rows["client peak RSS MiB"] = f"{r['maxrss_mib']:.0f}"
    if "tree_peak_mib" in r:
        for role, mib in r["process_peaks_mib"].items():
            rows[f"peak RSS MiB: {role}"] = f"{mib:.0f}"
        rows["peak RSS of all its processes together MiB (at s)"] = (
            f"{r['tree_peak_mib']:.0f} ({r['tree_peak_at_s']:.0f})"
        )
    return rows


def print_table(results: list[dict[str, Any]]) -> None:
    columns = [figures(r) for r in results]
    names = [r["name"] for r in results]
    keys: list[str] = []
    for col in columns:
        keys += [k for k in col if k not in keys]
    widths = [max(len(n), *(len(c.get(k, "")) for k in keys)) for n, c in zip(names, columns, strict=True)]
    label = max(len(k) for k in keys)
    print(
        "| "
        + "figure".ljust(label)
        + " | "
        + " | ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
        + " |"
    )
    print("| " + "-" * label + " | " + " | ".join("-" * (w - 1) + ":" for w in widths) + " |")
    for k in keys:
        cells = " | ".join(c.get(k, "—").rjust(w) for c, w in zip(columns, widths, strict=True))
        print(f"| {k.ljust(label)} | {cells} |")


def _trace_folder(trace: str | None, sub: str) -> str | None:
    if not trace:
        return None
    folder = Path(trace, sub).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--parts", default="limit,replicate,faults,overhead", help="comma-separated scenarios"
    )
    parser.add_argument(
        "--jobs", type=int, default=3000, help="batch size at the limit (limit, replicate, faults)"
    )
    parser.add_argument("--create-rpm", type=int, default=6000, help="create limit, server and runner")
    parser.add_argument("--other-rpm", type=int, default=3000, help="limit of other API calls, both sides")
    parser.add_argument(
        "--burst",
        type=int,
        default=10,
        help="create burst, server and runner (the runner keeps half of it in reserve)",
    )
    parser.add_argument("--latency", type=float, default=1.0, help="mean prediction time at the limit, s")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=500,
        help="flux-batch max_in_flight (the in-flight cap's ceiling)",
    )
    parser.add_argument("--replicate-concurrency", type=int, default=100, help="semaphore size")
    parser.add_argument("--faults", default="html_5xx:0.02,ambiguous_create:0.01", help="for the faults part")
    parser.add_argument("--overhead-jobs", type=int, default=5000, help="batch size without limits")
    parser.add_argument("--overhead-in-flight", type=int, default=100, help="max_in_flight without limits")
    parser.add_argument(
        "--transports", default="httpcore,aiohttp", help="for the transports part: httpcore, aiohttp"
    )
    parser.add_argument("--memory-jobs", type=int, default=100_000, help="batch size of the memory part")
    parser.add_argument(
        "--memory-timeline",
        metavar="PREFIX",
        help="memory part: write each process's RSS, sampled every 0.2 s, to PREFIX.<scenario>.jsonl",
    )
    parser.add_argument(
        "--before",
        metavar="SOURCE",
        help="limit, overhead and memory parts: also run flux-batch from this checkout (a folder holding "
        "flux_batch/), to compare two versions in one invocation",
    )
    parser.add_argument(
        "--trace",
        metavar="FOLDER",
        help="limit part: trace every create of flux-batch's run (and of --before's, in a subfolder) on "
        "both sides into FOLDER and print where creates bunched (bench/pace_trace.py)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed")
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip
    limited = ["--latency", str(args.latency), "--create-rpm", str(args.create_rpm),
               "--other-rpm", str(args.other_rpm), "--burst", str(args.burst)]  # fmt: skip
    unlimited = ["--latency", "0", "--create-rpm", "0", "--other-rpm", "0"]
    fault_args = [a for spec in args.faults.split(",") if spec for a in ("--fault", spec)]
    at_limit = {"jobs": args.jobs, "rate": args.create_rpm / 60, "latency": args.latency}
    fb = {"tool": "flux-batch", "max_in_flight": args.max_in_flight, "create_rpm": args.create_rpm,
          "other_rpm": args.other_rpm, "burst": args.burst, "thumbnails": True, **at_limit}  # fmt: skip
    rep = {"tool": "replicate", "concurrency": args.replicate_concurrency, **at_limit}
    # "A very high limit on the runner": the limiter stays in the path but never waits.
    free = {"tool": "flux-batch", "max_in_flight": args.overhead_in_flight, "create_rpm": 10_000_000,
            "other_rpm": 10_000_000, "thumbnails": True}  # fmt: skip
    plan: list[tuple[str, list[str], dict[str, Any]]] = []
    if "limit" in parts:
        plan.append(("flux-batch", limited, {**fb, "trace": _trace_folder(args.trace, "")}))
        if args.before:
            before_fb = {**fb, "source": args.before, "trace": _trace_folder(args.trace, "before")}
            plan.append(("flux-batch-before", limited, before_fb))
    if "replicate" in parts:
        plan.append(("replicate", limited, rep))
    if "faults" in parts:
        plan.append(("flux-batch+faults", limited + fault_args, fb))
        plan.append(("replicate+faults", limited + fault_args, rep))
    if "overhead" in parts:
        plan.append(("overhead", unlimited, {**free, "jobs": args.overhead_jobs}))
        plan.append(
            ("overhead-no-thumbs", unlimited, {**free, "jobs": args.overhead_jobs, "thumbnails": False})
        )
        if args.before:
            before = {**free, "jobs": args.overhead_jobs, "source": args.before}
            plan.append(("overhead-before", unlimited, before))
            plan.append(("overhead-no-thumbs-before", unlimited, {**before, "thumbnails": False}))
        rep_free = {"tool": "replicate", "concurrency": args.overhead_in_flight, "jobs": args.overhead_jobs}
        plan.append(("replicate-overhead", unlimited, rep_free))
    if "transports" in parts:  # the runner without thumbnails over each HTTP transport, in one run
        for name in args.transports.split(","):
            spec = {**free, "jobs": args.overhead_jobs, "thumbnails": False, "transport": name}
            plan.append((f"no-thumbs-{name}", unlimited, spec))
    if "memory" in parts:
        memory = {**free, "jobs": args.memory_jobs, "report": True}
        timeline = args.memory_timeline
        plan.append(("memory", unlimited, {**memory, "timeline": timeline and f"{timeline}.memory.jsonl"}))
        if args.before:
            before = {**memory, "source": args.before}
            before["timeline"] = timeline and f"{timeline}.memory-before.jsonl"
            plan.append(("memory-before", unlimited, before))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        for name, sim_args, spec in plan:
            results.append(scenario(name, sim_args, spec, Path(tmp), args.timeout))
    print_table(results)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
