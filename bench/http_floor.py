"""The floor under the runner's overhead: what httpx alone costs for the two requests of a job.

    python bench/http_floor.py [--jobs 4000] [--concurrency 20,100] [--body-kib 40]

A trivial ASGI app (a fixed JSON answer to any POST, a fixed ``--body-kib`` body to any GET, nothing
computed) is served by uvicorn in its own process; this process then runs ``--jobs`` "jobs" of one JSON
POST (read and parsed, as a create answered within ``Prefer: wait``) and one GET read whole (as the image
download), on one ``httpx.AsyncClient`` with keep-alive connections, ``--concurrency`` at a time under an
``asyncio.Semaphore``. It prints jobs per second and this process's CPU milliseconds per job (user +
system, ``getrusage``), after a warm-up of 200 jobs.

Nothing flux-batch does is in it: no state, no files, no limiter. The server does no work beyond HTTP, so
jobs per second is what one httpx client process can do on this machine, and CPU per job is what any
httpx-based runner spends before doing anything of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time

import httpx

SERVER = """
import sys, uvicorn
body = b'{"id":"p1","status":"succeeded","output":["http://127.0.0.1/out/p1.jpg"]}'
image = b"\\xff" * (int(sys.argv[2]) * 1024)
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    data = image if scope["method"] == "GET" else body
    kind = b"image/jpeg" if scope["method"] == "GET" else b"application/json"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(base: str, jobs: int, concurrency: int) -> tuple[float, float]:
    """(jobs per second, CPU ms per job) for ``jobs`` create + download pairs."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def job(i: int) -> None:
            async with gate:
                created = await client.post(
                    f"{base}/v1/models/black-forest-labs/flux-schnell/predictions",
                    json={"input": {"prompt": f"a lighthouse {i}", "seed": i}},
                    headers={"Prefer": "wait=60"},
                )
                created.json()
                image = await client.get(f"{base}/out/p{i}.jpg")
                image.read()

        await asyncio.gather(*(job(i) for i in range(200)))  # warm-up: connections open, code paths hot
        cpu0, t0 = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(job(i) for i in range(jobs)))
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    return jobs / wall, cpu * 1000 / jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--concurrency", default="20,100", help="comma-separated semaphore sizes")
    parser.add_argument("--body-kib", type=int, default=40, help="size of the GET body (a 512 px JPEG: ~40)")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.body_kib)])
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/ready", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        load = os.getloadavg()
        print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, httpx {httpx.__version__}, "
              f"load average before: {load[0]:.2f}")  # fmt: skip
        print("| concurrency | jobs/s | client CPU ms/job (POST + GET) |")
        print("| --: | --: | --: |")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            rate, cpu_ms = asyncio.run(measure(base, args.jobs, concurrency))
            print(f"| {concurrency} | {rate:.0f} | {cpu_ms:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
