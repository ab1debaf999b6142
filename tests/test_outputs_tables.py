"""CSV columns, inputs resolution fallbacks, and the progress tracker."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flux_batch.errors import InvalidInputError
from flux_batch.jobs import file_ref
from flux_batch.outputs.layout import HEAD_COLUMNS as HEAD
from flux_batch.outputs.layout import TAIL_COLUMNS as TAIL
from flux_batch.outputs.tables import columns
from flux_batch.runner.client import ApiClient
from flux_batch.runner.inputs import InputResolver
from flux_batch.runner.progress import Tracker
from flux_batch.runner.state.store import Store


def test_columns_order_and_collisions() -> None:
    cols = columns(["subject", "status", "guidance"], ["guidance", "aspect_ratio", "prompt", "seed"])
    assert cols.header[: len(HEAD)] == HEAD and cols.header[-len(TAIL) :] == TAIL
    assert cols.var_columns == {"subject": "subject", "status": "var_status", "guidance": "guidance"}
    assert list(cols.input_columns.values()) == ["input_guidance", "input_aspect_ratio"]


async def _direct(call):  # type: ignore[no-untyped-def]
    return await call()


@pytest.mark.parametrize("upload_status", [201, 404])
async def test_local_files_upload_or_fall_back_to_data_uri(tmp_path: Path, upload_status: int) -> None:
    photo = tmp_path / "cat.png"
    photo.write_bytes(b"\x89PNG fake")
    import hashlib

    sha = hashlib.sha256(photo.read_bytes()).hexdigest()

    def handler(request: httpx.Request) -> httpx.Response:
        if upload_status == 201:
            return httpx.Response(201, json={"id": "f", "urls": {"get": "http://api/v1/files/f"}})
        return httpx.Response(404, json={"detail": "no files API"})

    store = Store.open(tmp_path / "out")
    client = ApiClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://api/v1", "t")
    resolver = InputResolver(store, client, tmp_path / "out", tmp_path, call=_direct)
    resolved = await resolver.resolve({"prompt": "x", "input_image": file_ref("cat.png", sha)})
    if upload_status == 201:
        assert resolved["input_image"] == "http://api/v1/files/f"
        again = await resolver.resolve({"input_image": file_ref("cat.png", sha)})
        assert again["input_image"] == "http://api/v1/files/f" and client.calls["upload"] == 1
    else:
        assert resolved["input_image"].startswith("data:image/png;base64,")
    with pytest.raises(InvalidInputError, match="changed since"):
        await resolver.resolve({"input_image": file_ref("cat.png", "0" * 64)})
    with pytest.raises(InvalidInputError, match="does not exist"):
        await resolver.resolve({"input_image": file_ref("dog.png", sha)})
    store.close()


def test_tracker_counts_rate_and_eta() -> None:
    now = [0.0]
    tracker = Tracker({"a": {"pending": 4}}, clock=lambda: now[0])
    tracker.move("a", "pending", "submitting")
    assert tracker.snapshot().counts == {"a": {"pending": 3, "submitted": 1}}
    now[0] = 10.0
    tracker.move("a", "submitting", "succeeded")
    snap = tracker.snapshot()
    assert snap.done == 1 and snap.succeeded == 1 and snap.total == 4
    assert snap.rate_per_s == pytest.approx(0.1) and snap.eta_s == pytest.approx(30.0)


def test_tracker_holds_only_the_rate_s_window_without_a_progress_view() -> None:
    """A library run without a progress callback never asks for a snapshot: the finishing times the rate
    is counted from must not pile up, one a job, for the whole run."""
    now = [0.0]
    tracker = Tracker({"a": {"pending": 20_000}}, clock=lambda: now[0], window_s=30.0)
    for i in range(20_000):
        now[0] = i / 100  # 100 jobs a second for 200 s
        tracker.move("a", "pending", "succeeded")
    assert len(tracker._finished) <= 30 * 100 + 1
    assert tracker.snapshot().rate_per_s == pytest.approx(100, rel=0.01)
