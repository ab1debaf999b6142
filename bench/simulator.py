"""Benchmark of the simulator: requests per second served on loopback, and image rendering cost.

Starts ``flux-batch simulate`` (limits off, latency 0) in a subprocess on a free port, then runs client
processes, each with concurrent tasks doing create (no wait) + get pairs for a fixed time, and prints
create, get and total requests per second: first with a bare keep-alive HTTP/1.1 client (cheap, so the
server is what is measured), then with ``httpx.AsyncClient`` (what flux-batch itself uses). Then
times a 1-megapixel WebP cold (first request for that image) and cached, over HTTP and in-process.

    python bench/simulator.py [--seconds 10] [--clients 1] [--concurrency 16] [--httpx-concurrency 4]
                              [--servers plain,fast]

Each figure is taken for each server variant in the same run: ``plain`` is uvicorn on h11 and asyncio's
loop (what a plain install gets), ``fast`` uses httptools and uvloop when installed (the ``fast`` extra).
The server's CPU per request (or per job: a create held by ``Prefer: wait`` plus the download of its
0.25-megapixel JPEG, what a run asks) is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time

import httpx

SERVE = (
    "import argparse, sys; from flux_batch.cli import simulate_cmd; p = argparse.ArgumentParser(); "
    "simulate_cmd.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)
#: The server as it runs without the ``fast`` extra: uvicorn falls back to h11 and asyncio's own loop.
WITHOUT_FAST = "import sys; sys.modules['httptools'] = None; sys.modules['uvloop'] = None; "
CREATE = "/models/black-forest-labs/flux-schnell/predictions"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_server(fast: bool = True) -> tuple[subprocess.Popen[str], str]:
    args = ["simulate", "--port", "0", "--latency", "0", "--create-rpm", "0", "--other-rpm", "0"]
    code = SERVE if fast else WITHOUT_FAST + SERVE
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"Replicate style: (\S+)", line)
        if match:
            return proc, match[1]
    raise RuntimeError("the simulator did not start")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def _client(base: str, seconds: float, concurrency: int, worker: int) -> tuple[int, int, int]:
    creates = gets = errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": "Bearer bench"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        end = time.perf_counter() + seconds

        async def loop(task: int) -> None:
            nonlocal creates, gets, errors
            n = 0
            while time.perf_counter() < end:
                n += 1
                body = {"input": {"prompt": f"bench {worker} {task} {n}", "seed": n}}
                created = await client.post(CREATE, json=body)
                creates += 1
                if created.status_code != 201:
                    errors += 1
                    continue
                got = await client.get(f"/predictions/{created.json()['id']}")
                gets += 1
                errors += got.status_code != 200

        await asyncio.gather(*(loop(t) for t in range(concurrency)))
    return creates, gets, errors


class RawConnection:
    """A bare HTTP/1.1 keep-alive connection: a load generator much lighter than httpx, so that on a
    2-core machine the clients leave CPU for the server being measured."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", prefer_wait: bool = False
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + ("Prefer: wait=60\r\n" if prefer_wait else "")
            + "\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        headers = await self.reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length: *(\d+)", headers)
        payload = await self.reader.readexactly(int(match[1]) if match else 0)
        return int(status_line.split()[1]), payload


async def _raw_client(
    base: str, seconds: float, concurrency: int, worker: int, as_jobs: bool = False
) -> tuple[int, int, int]:
    """Create (no wait) + get pairs on bare keep-alive connections; or, ``as_jobs``, a run's two requests
    per job: a create held by ``Prefer: wait`` until the prediction is done, then the download of its one
    output (a 0.25-megapixel JPEG, as bench/runner.py asks for)."""
    url = httpx.URL(base)
    first = second = errors = 0
    end = time.perf_counter() + seconds

    async def loop(task: int) -> None:
        nonlocal first, second, errors
        conn = RawConnection(url.host, url.port or 80)
        await conn.open()
        n = 0
        while time.perf_counter() < end:
            n += 1
            inp: dict[str, object] = {"prompt": f"bench {worker} {task} {n}", "seed": n}
            if as_jobs:
                inp.update(megapixels="0.25", output_format="jpg")
            body = json.dumps({"input": inp}).encode()
            status, payload = await conn.request("POST", url.path + CREATE, body, prefer_wait=as_jobs)
            first += 1
            if status != 201:
                errors += 1
                continue
            created = json.loads(payload)
            if as_jobs:
                path = httpx.URL(created["output"][0]).raw_path.decode()
            else:
                path = f"{url.path}/predictions/{created['id']}"
            status, _ = await conn.request("GET", path)
            second += 1
            errors += status != 200
        conn.writer.close()

    await asyncio.gather(*(loop(t) for t in range(concurrency)))
    return first, second, errors


async def _raw_jobs(base: str, seconds: float, concurrency: int, worker: int) -> tuple[int, int, int]:
    return await _raw_client(base, seconds, concurrency, worker, as_jobs=True)


CLIENTS = {"raw": _raw_client, "httpx": _client, "jobs": _raw_jobs}


def _client_process(args: tuple[str, str, float, int, int]) -> tuple[int, int, int]:
    kind, *rest = args
    return asyncio.run(CLIENTS[kind](*rest))  # type: ignore[arg-type]


def measure_rate(kind: str, base: str, seconds: float, clients: int, concurrency: int, pid: int) -> None:
    cpu0 = cpu_s(pid)
    with multiprocessing.Pool(clients) as pool:
        jobs = [(kind, base, seconds, concurrency, w) for w in range(clients)]
        results = pool.map(_client_process, jobs)
    server_cpu = cpu_s(pid) - cpu0
    first = sum(r[0] for r in results)
    second = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    print(f"{kind} client: {clients} processes x {concurrency} concurrent, {seconds:g} s, {errors} errors")
    if kind == "jobs":
        print(f"  jobs (create with wait + download): {first / seconds:8.0f} jobs/s")
        print(f"  server CPU per job:                 {server_cpu * 1000 / max(first, 1):8.2f} ms")
        return
    print(f"  create (no wait): {first / seconds:8.0f} req/s")
    print(f"  get:              {second / seconds:8.0f} req/s")
    print(f"  create+get:       {(first + second) / seconds:8.0f} req/s")
    print(f"  server CPU per create+get: {server_cpu * 1000 / max(first, 1):6.2f} ms")


def measure_images(base: str) -> None:
    headers = {"Authorization": "Bearer bench"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for run in range(3):
            body = {
                "input": {"prompt": f"a lighthouse at dusk, take {run}", "seed": run, "output_format": "webp"}
            }
            url = client.post(CREATE, json=body).json()["id"]
            output = client.get(f"/predictions/{url}").json()["output"][0]
            t0 = time.perf_counter()
            first = client.get(output)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            client.get(output)
            cached = time.perf_counter() - t0
            print(
                f"1-megapixel webp ({len(first.content)} bytes): cold {cold * 1000:6.1f} ms, "
                f"cached {cached * 1000:5.1f} ms (HTTP round trip included)"
            )


def measure_render(count: int = 10) -> None:
    """Rendering alone, in this process: distinct 1-megapixel images (cold), then one of them again."""
    from flux_batch.models.catalog import get_model
    from flux_batch.simulator.images import image_spec, render

    spec = get_model("black-forest-labs/flux-schnell")
    for fmt in ("webp", "png", "jpg"):
        specs = [
            image_spec(spec, {"prompt": f"render {fmt} {i}", "output_format": fmt}, i, 0)
            for i in range(count)
        ]
        t0 = time.perf_counter()
        sizes = [len(render(s)) for s in specs]
        cold = (time.perf_counter() - t0) / count
        t0 = time.perf_counter()
        for _ in range(1000):
            render(specs[0])
        cached = (time.perf_counter() - t0) / 1000
        print(
            f"render {specs[0].width}x{specs[0].height} {fmt}: cold {cold * 1000:5.1f} ms, cached "
            f"{cached * 1e6:4.1f} us (mean of {count}, {sum(sizes) // count} bytes)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent tasks per client process")
    parser.add_argument(
        "--httpx-concurrency",
        type=int,
        default=4,
        help="concurrent tasks per httpx client (it slows above ~8)",
    )
    parser.add_argument(
        "--servers",
        default="plain,fast",
        help="server variants, in one run: plain (h11, asyncio's loop), fast (httptools, uvloop)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f}"
    )
    for variant in args.servers.split(","):
        proc, base = start_server(fast=variant == "fast")
        try:
            print(f"== {variant} server at {base}")
            measure_rate("raw", base, args.seconds, args.clients, args.concurrency, proc.pid)
            measure_rate("jobs", base, args.seconds, args.clients, args.concurrency, proc.pid)
            if args.httpx_concurrency:
                measure_rate("httpx", base, args.seconds, args.clients, args.httpx_concurrency, proc.pid)
            measure_images(base)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    measure_render()
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    main()
