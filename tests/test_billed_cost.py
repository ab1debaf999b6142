"""A job priced by megapixel costs what the API billed: the prediction's ``metrics`` carry
``image_input_megapixel_count`` and ``image_output_megapixel_count`` (FLUX.2); without them, the estimate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from flux_batch.cli import main
from flux_batch.models.pricing import parse_price
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.server import serve_in_thread

MANIFEST = """\
version: 1
name: billed
stages:
  - id: a
    model: black-forest-labs/flux-2-pro
    prompt: "a {x}"
    input: {aspect_ratio: "1:1", resolution: "1 MP"}
    matrix: {x: [cat, dog]}
  - id: b
    model: black-forest-labs/flux-schnell
    prompt: "a {x}"
    matrix: {x: [owl]}
"""


class Billing(httpx.AsyncBaseTransport):
    """The in-process simulator, with the megapixels a FLUX.2 prediction reports added to its metrics."""

    def __init__(self, app: object, metrics: dict[str, float] | None) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        try:
            data = json.loads(body)
        except ValueError:
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        succeeded = isinstance(data, dict) and data.get("status") == "succeeded"
        if self.metrics and succeeded and "flux-2" in str(data.get("model")):
            data["metrics"].update(self.metrics)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, json=data)


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metrics: dict[str, float] | None
) -> list[dict[str, str]]:
    app = create_app(SimConfig(latency=0.01, seed=3))
    monkeypatch.setattr(
        "flux_batch.api.http_client", lambda n: httpx.AsyncClient(transport=Billing(app, metrics))
    )
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test")
    (tmp_path / "m.yaml").write_text(MANIFEST, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "m.yaml"), "--out", str(out), "--quiet", "--yes"]) == 0
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_the_billed_megapixels_set_the_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = run(
        tmp_path, monkeypatch, {"image_input_megapixel_count": 2.5, "image_output_megapixel_count": 1.05}
    )
    pro = [float(r["cost_usd"]) for r in rows if r["stage"] == "a"]
    assert pro == [pytest.approx(0.015 + 0.015 * 2.5 + 0.015 * 1.05)] * 2  # run + input MP + output MP
    assert [r["cost_usd"] for r in rows if r["stage"] == "b"] == ["0.003"]  # per image: as priced
    spent = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))["summary"]["cost_usd"]
    assert spent == pytest.approx(2 * (0.015 + 0.015 * 2.5 + 0.015 * 1.05) + 0.003)


def test_without_the_counts_the_estimate_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = run(tmp_path, monkeypatch, None)
    assert [float(r["cost_usd"]) for r in rows if r["stage"] == "a"] == [pytest.approx(0.03)] * 2  # 1 MP out


def test_a_rate_by_input_applies_to_the_billed_megapixels() -> None:
    price = parse_price([{"per_output_mp": 0.01, "when": {"go_fast": True}}, {"per_output_mp": 0.02}])
    assert price is not None
    assert price.billed({"go_fast": True}, images=1, input_mp=0, output_mp=2) == pytest.approx(0.02)
    assert price.billed({}, images=1, input_mp=3, output_mp=2) == pytest.approx(0.04)


SERVED = """\
version: 1
name: billed-served
seed: 7
api: {{base_url: "{base}"}}
stages:
  - id: gen
    model: black-forest-labs/flux-1.1-pro
    prompt: "a {{animal}} in {{style}}"
    input: {{aspect_ratio: custom, width: 1440, height: 1440}}
    matrix: {{animal: [cat, fox], style: [ink, oil]}}
  - id: poster
    model: black-forest-labs/flux-2-pro
    prompt: "one poster of the {{animal}}s"
    input:
      input_images: {{from: gen, group_by: [animal]}}
      aspect_ratio: "16:9"
      resolution: "2 MP"
"""


@pytest.mark.slow
def test_a_served_flux_2_run_costs_its_price_per_megapixel(tmp_path: Path) -> None:
    """End to end, with no stand-in: the served simulator bills each FLUX.2 prediction by the megapixels
    of its real input images and output, reports them in its metrics, and the CSV, run.json and the
    report carry that cost. Each poster takes two 1440 x 1440 references (2 MP each, rounded up) and
    makes a 2 MP output: $0.015 a run + 4 input MP x $0.015 + 2 output MP x $0.015 = $0.105, where the
    estimate (1 MP for each reference) said $0.075."""
    with serve_in_thread(create_app(SimConfig(latency=0.05, seed=3))) as root:
        (tmp_path / "m.yaml").write_text(SERVED.format(base=root + "/v1"), encoding="utf-8")
        out = tmp_path / "out"
        env = {"REPLICATE_API_TOKEN": "r8_test"}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            assert main(["run", str(tmp_path / "m.yaml"), "--out", str(out), "--quiet", "--yes"]) == 0
        stats = httpx.get(root + "/_simulator/stats").json()
    with open(out / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    posters = [r for r in rows if r["stage"] == "poster"]
    assert len(posters) == 2 and {r["width"] for r in rows if r["stage"] == "gen"} == {"1440"}
    assert [float(r["cost_usd"]) for r in posters] == [pytest.approx(0.105)] * 2
    spent = json.loads((out / "run.json").read_text(encoding="utf-8"))["summary"]["cost_usd"]
    assert spent == pytest.approx(4 * 0.04 + 2 * 0.105)
    assert stats["cost_usd"] == pytest.approx(spent)  # what the simulated account was charged
    assert f"${spent:.2f}" in (out / "report.html").read_text(encoding="utf-8")
