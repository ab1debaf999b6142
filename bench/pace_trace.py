"""Where a run at the limit loses its pace: a trace of every create, from both sides (``bench/runner.py
--trace FOLDER``; bench only, nothing of it is in the product).

The runner's side (the limit part's flux-batch process): for each create attempt, when its limiter token
was taken, when httpx handed the request to the transport (an event hook: the "send"), when the answer came
and whether it was a 429; every 429 the create limiter was told of, with the pause it set; and how late the
runner's event loop woke (a 5-ms ticker). The server's side (the simulator process): for each create it
metered, when, the create bucket's level before it, and whether it refused; and its own loop's lateness.
Requests are matched by a header carrying the job's seed and attempt.

``analyse`` then meters the same creates with the server's bucket (rate and burst) at each of the three
times: at the token, at the send and at the server's own metering (what it did), so the step where the
bunching that makes 429s comes in shows as the first of them with refusals.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

HEADER = "x-bench-trace"
_attempt: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("attempt", default=None)


class _Lag:
    """How late a 5-ms sleep wakes, sampled on the running loop: the loop's stalls."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (wall, lateness s)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            late = time.perf_counter() - t0 - 0.005
            if late > 0.002:
                self.samples.append((time.time(), late))


def install_client(http: Any) -> dict[str, Any]:
    """Patch this (the runner's) process; returns the trace, filled as the run goes."""
    from flux_batch.runner import ratelimit
    from flux_batch.runner.client import ApiClient

    trace: dict[str, Any] = {"attempts": [], "throttled": [], "lag": []}
    token_at: dict[int, float] = {}
    lag = _Lag()
    trace["lag"] = lag.samples

    acquire = ratelimit.Limiter.acquire

    async def traced_acquire(self: Any, *, first: bool = False, **kw: Any) -> Any:
        taken = await acquire(self, first=first, **kw)  # the token's time (None before #15's change)
        if getattr(self, "_traced_create", False):
            task = asyncio.current_task()
            token_at[id(task)] = time.time()
        return taken

    init = ratelimit.Limiter.__init__
    made: list[Any] = []

    def traced_init(self: Any, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        made.append(self)
        self._traced_create = len(made) % 2 == 1  # session.py builds the create limiter, then the other

    throttled = ratelimit.Limiter.throttled

    def traced_throttled(self: Any, *a: Any, **kw: Any) -> Any:
        adopted = throttled(self, *a, **kw)
        if getattr(self, "_traced_create", False):
            trace["throttled"].append(
                {
                    "at": time.time(),
                    "mono": self._clock(),
                    "hold_until": self._hold_until,
                    "rate": self.rate,
                    "short": getattr(self, "short_pause_count", None),
                    "args": [x for x in a if not isinstance(x, Exception)],
                }
            )
        return adopted

    from flux_batch.runner.state import group_sync

    synced_at: dict[int, float] = {}
    trace["fsyncs"] = []
    call = group_sync.GroupSync.__call__
    one = group_sync.GroupSync._one

    async def traced_call(self: Any) -> None:
        await call(self)
        synced_at[id(asyncio.current_task())] = time.time()

    async def traced_one(self: Any) -> None:
        t0 = time.time()
        try:
            await one(self)
        finally:
            trace["fsyncs"].append((t0, time.time()))

    group_sync.GroupSync.__call__ = traced_call  # type: ignore[method-assign]
    group_sync.GroupSync._one = traced_one  # type: ignore[method-assign]
    create = ApiClient.create

    async def traced_create(self: Any, model: str, version: Any, input: dict[str, Any], **kw: Any) -> Any:
        lag.start()
        task = asyncio.current_task()
        seed = input.get("seed")
        record: dict[str, Any] = {
            "seed": seed,
            "token": token_at.pop(id(task), None),
            "synced": synced_at.pop(id(task), None),
            "call": time.time(),
        }
        record["key"] = f"{seed}.{len(trace['attempts'])}"
        trace["attempts"].append(record)
        _attempt.set(record)
        try:
            result = await create(self, model, version, input, **kw)
            record["outcome"] = "ok"
            return result
        except Exception as exc:
            record["outcome"] = (
                "429"
                if getattr(exc, "status", None) == 429 or "throttled" in str(exc)
                else (type(exc).__name__)
            )
            raise
        finally:
            record["answered"] = time.time()
            _attempt.set(None)

    async def on_request(request: Any) -> None:
        record = _attempt.get()
        if record is not None and request.method == "POST" and "send" not in record:
            record["send"] = time.time()
            request.headers[HEADER] = record["key"]

    ratelimit.Limiter.acquire = traced_acquire  # type: ignore[method-assign]
    ratelimit.Limiter.__init__ = traced_init  # type: ignore[method-assign]
    ratelimit.Limiter.throttled = traced_throttled  # type: ignore[method-assign]
    ApiClient.create = traced_create  # type: ignore[method-assign]
    http.event_hooks["request"].append(on_request)
    return trace


SERVE_TRACED = """
import json, signal, sys
sys.path.insert(0, {bench!r})
import pace_trace
from flux_batch.simulator import app as sim_app
trace = pace_trace.install_server(sim_app)
def dump():
    with open({path!r}, "w") as f:
        json.dump(trace, f)
def stop(*_):
    dump()
    sys.exit(0)
# uvicorn restores this handler once it has shut down, then raises the signal again: it runs then.
signal.signal(signal.SIGTERM, stop)
from flux_batch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def install_server(sim_app: Any) -> dict[str, Any]:
    """Patch the simulator's app in this (the server's) process; returns the trace."""
    trace: dict[str, Any] = {"creates": [], "lag": []}
    lag = _Lag()
    trace["lag"] = lag.samples
    guard = sim_app.SimulatorApp._guard

    async def traced_guard(self: Any, request: Any, endpoint: str, fired: Any) -> Any:
        if endpoint != "create":
            return await guard(self, request, endpoint, fired)
        lag.start()
        buckets = self.throttle._buckets
        before = next((b.available(self.clock()) for (_, create), b in buckets.items() if create), None)
        at = time.time()
        response, metered = await guard(self, request, endpoint, fired)
        refused = response is not None and response.status == 429
        trace["creates"].append(
            {"key": request.headers.get(HEADER), "at": at, "level": before, "refused": refused}
        )
        return response, metered

    sim_app.SimulatorApp._guard = traced_guard
    return trace


# -- analysis ----------------------------------------------------------------------------------------


def _pct(values: list[float], *ps: float) -> str:
    if not values:
        return "—"
    s = sorted(values)
    return " / ".join(f"{s[min(len(s) - 1, int(p * len(s)))] * 1000:.1f}" for p in ps)


def analyse(client: dict[str, Any], server: dict[str, Any], rate: float, burst: float) -> dict[str, Any]:
    """The figures of one traced run (``rate`` creates a second, the server's ``burst``)."""
    metered = {c["key"]: c for c in server["creates"] if c["key"]}
    rows = [a for a in client["attempts"] if a.get("send") and a.get("token") and a["key"] in metered]
    for a in rows:
        a["meter"] = metered[a["key"]]["at"]
        a["level"] = metered[a["key"]]["level"]
        a["refused"] = metered[a["key"]]["refused"]
    # Refusals counted in the server's order: a refused create takes no token (as the server meters).
    res: dict[str, Any] = {"attempts": len(client["attempts"]), "matched": len(rows)}
    from flux_batch.ratelimit import TokenBucket

    for name in ("token", "send", "meter"):
        bucket = TokenBucket(rate, burst)
        refused = 0
        for a in sorted(rows, key=lambda r: r[name]):
            refused += bucket.take(a[name]) > 0
        res[f"refused if metered at {name}"] = refused
    res["429s (server)"] = sum(1 for c in server["creates"] if c["refused"])
    res["token -> send ms p50/p90/p99/max"] = _pct([a["send"] - a["token"] for a in rows], 0.5, 0.9, 0.99, 1)
    synced = [a for a in rows if a.get("synced")]
    res["token -> intent fsynced ms p50/p90/p99/max"] = _pct(
        [a["synced"] - a["token"] for a in synced], 0.5, 0.9, 0.99, 1
    )
    res["fsynced -> send ms p50/p90/p99/max"] = _pct(
        [a["send"] - a["synced"] for a in synced], 0.5, 0.9, 0.99, 1
    )
    fs = client.get("fsyncs", [])
    res["group fsyncs: count, ms p50/p90/max"] = f"{len(fs)}, " + _pct([b - a for a, b in fs], 0.5, 0.9, 1)
    res["send -> server ms p50/p90/p99/max"] = _pct([a["meter"] - a["send"] for a in rows], 0.5, 0.9, 0.99, 1)
    # Bunching: the most creates in any 100 ms window, at each step (100 ms = 10 tokens at 6,000/min).
    for name in ("token", "send", "meter"):
        ts = sorted(a[name] for a in rows)
        most, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] < t - 0.1:
                j += 1
            most = max(most, i - j + 1)
        res[f"most creates in 100 ms at {name}"] = most
    refused = [a for a in rows if a["refused"]]
    res["429'd: send -> server ms p50/max"] = _pct([a["meter"] - a["send"] for a in refused], 0.5, 1)
    res["429'd: server level before"] = (
        f"{min(a['level'] for a in refused):.2f}-{max(a['level'] for a in refused):.2f}" if refused else "—"
    )
    # Episodes: 429s the server answered within a second of the previous one.
    ats = sorted(a["meter"] for a in refused)
    episodes = sum(1 for i, t in enumerate(ats) if i == 0 or t - ats[i - 1] > 1.0)
    res["429 episodes (gaps > 1 s)"] = episodes
    holds = client["throttled"]
    res["throttled() calls (create limiter)"] = len(holds)
    res["short pauses (one token's time)"] = max((h.get("short") or 0 for h in holds), default=0)
    # Time paused: the union of [told, hold_until] on the limiter's clock.
    paused, end = 0.0, float("-inf")
    for h in sorted(holds, key=lambda h: h["mono"]):
        start = max(h["mono"], end)
        if h["hold_until"] > start:
            paused += h["hold_until"] - start
        end = max(end, h["hold_until"])
    res["creates paused by 429s, s"] = f"{paused:.2f}"
    for side, lag in (("runner", client["lag"]), ("server", server["lag"])):
        lates = [x[1] for x in lag]
        res[f"{side} loop stalls > 20 ms / > 100 ms / max ms"] = (
            f"{sum(1 for x in lates if x > 0.02)} / {sum(1 for x in lates if x > 0.1)} / "
            f"{max(lates, default=0) * 1000:.0f}"
        )
    if refused:
        # The runner's and the server's loops around each episode's first 429.
        firsts = [t for i, t in enumerate(ats) if i == 0 or t - ats[i - 1] > 1.0]
        near = []
        for t in firsts:
            for side, lag in (("runner", client["lag"]), ("server", server["lag"])):
                worst = max((x[1] for x in lag if t - 1.0 <= x[0] <= t), default=0.0)
                near.append(f"{side} {worst * 1000:.0f}")
        res["worst loop stall in the second before each episode, ms"] = ", ".join(near[:16])
    res["median steady spacing at send, ms"] = (
        f"{statistics.median(b['send'] - a['send'] for a, b in itertools.pairwise(rows)) * 1000:.1f}"
        if len(rows) > 2
        else "—"
    )
    return res


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="figures of a traced run (bench/runner.py --trace)")
    parser.add_argument("folder")
    parser.add_argument("--rate", type=float, default=100.0, help="creates a second")
    parser.add_argument("--burst", type=float, default=100.0)
    args = parser.parse_args()
    folder = Path(args.folder)
    client = json.loads((folder / "client.json").read_text())
    server = json.loads((folder / "server.json").read_text())
    for k, v in analyse(client, server, args.rate, args.burst).items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
