"""Progress for a person, drawn from the library's events (the library itself never prints).

tqdm bars on a terminal, a plain line every few seconds otherwise, or nothing with ``--quiet``; notices
(throttling, stopping, the budget) are printed unless quiet.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, TextIO

from flux_batch.jobs.status import DONE
from flux_batch.runner.progress import Event, Tracker

PLAIN_EVERY_S = 5.0


class ProgressView:
    """Progress for a human: tqdm bars on a terminal, a plain line every few seconds otherwise, or
    nothing with ``--quiet``. Notices (throttling, stopping, the budget) are printed unless quiet."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._tty = stream.isatty()
        self._bars: dict[str, Any] = {}
        self._last = 0.0
        self._last_throttle_note = 0.0

    def on_event(self, event: Event, tracker: Tracker) -> None:
        if self._quiet:
            return
        try:
            self._show(event, tracker)
        except OSError:  # the reader of our output went away (`| head`): the run goes on, silently
            self._quiet = True

    def _show(self, event: Event, tracker: Tracker) -> None:
        now = time.monotonic()
        if event.kind == "notice":
            self._write(f"flux-batch: {event.message}")
        elif event.kind == "throttled" and now - self._last_throttle_note > 10:
            self._last_throttle_note = now
            self._write(f"flux-batch: throttled by the API; slowing down ({event.message})")
        if now - self._last < (0.2 if self._tty else PLAIN_EVERY_S) and event.status not in ("", "failed"):
            return
        self._last = now
        if self._tty:
            self._draw_bars(tracker)
        else:
            self._write(_line(tracker))

    def _write(self, text: str) -> None:
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=self._stream)
        else:
            print(text, file=self._stream, flush=True)

    def _draw_bars(self, tracker: Tracker) -> None:
        from tqdm import tqdm

        snap = tracker.snapshot()
        rows = [("all", snap.counts)] + [(stage, {stage: snap.counts[stage]}) for stage in snap.stages]
        for name, counts in rows:
            if name == "all" and len(rows) == 2:
                continue
            total = sum(sum(by.values()) for by in counts.values())
            done = sum(by.get(s, 0) for by in counts.values() for s in DONE)
            bar = self._bars.get(name)
            if bar is None:
                bar = self._bars[name] = tqdm(
                    total=total,
                    desc=name,
                    position=len(self._bars),
                    file=self._stream,
                    leave=True,
                    unit="job",
                )
            bar.total = total
            bar.n = done
            ok = sum(by.get("succeeded", 0) for by in counts.values())
            bad = done - ok
            busy = sum(by.get(s, 0) for by in counts.values() for s in ("submitted", "running"))
            postfix = f"ok={ok} failed={bad} in flight={busy}"
            if name == "all" or len(rows) == 2:
                postfix += f" ${snap.spent_usd:.2f}"
            bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            with contextlib.suppress(OSError):
                bar.close()


def _line(tracker: Tracker) -> str:
    snap = tracker.snapshot()
    eta = f"{snap.eta_s:.0f}s" if snap.eta_s is not None else "?"
    return (
        f"flux-batch: {snap.done}/{snap.total} done ({snap.succeeded} ok, {snap.failed} failed), "
        f"{snap.in_flight} in flight, ${snap.spent_usd:.2f}, {snap.rate_per_s * 60:.0f}/min, ETA {eta}"
    )
