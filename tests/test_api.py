"""The public Python API (flux_batch.api): each call, and docs/library.md's walk-through run as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import flux_batch
from flux_batch.errors import ManifestError, MissingTokenError, UsageError
from flux_batch.simulator import SimConfig
from flux_batch.testing import FakeClock, asimulate, simulate

ROOT = Path(__file__).resolve().parent.parent


def sweep(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "cats",
        "stages": [
            {
                "id": "cat",
                "model": "black-forest-labs/flux-schnell",
                "prompt": "a {color} cat",
                "input": {"megapixels": "0.25"},
                "matrix": {"color": ["red", "blue", "green"]},
            }
        ],
        **extra,
    }


def test_the_public_names_are_exported_and_documented() -> None:
    for name in flux_batch.__all__:
        if name != "__version__":
            assert getattr(flux_batch, name).__doc__, name
    assert (ROOT / "flux_batch" / "py.typed").is_file()


def test_loads_takes_a_mapping_or_yaml_text_relative_to_base_dir(tmp_path: Path) -> None:
    from_mapping = flux_batch.loads(sweep(), base_dir=tmp_path)
    text = "version: 1\nname: cats\nstages:\n- {id: cat, model: black-forest-labs/flux-schnell, prompt: x}\n"
    from_text = flux_batch.loads(text, base_dir=tmp_path)
    assert from_mapping.output == from_text.output == tmp_path / "out" / "cats"
    assert [s.id for s in from_mapping.stages] == ["cat"]


def test_loads_raises_one_error_carrying_every_issue(tmp_path: Path) -> None:
    bad = sweep()
    bad["stages"][0]["promt"] = bad["stages"][0].pop("prompt")
    bad["stages"][0]["matrix"]["guidance"] = [99]
    with pytest.raises(ManifestError) as caught:
        flux_batch.loads(bad, base_dir=tmp_path, name="cats.yaml")
    rendered = [i.render() for i in caught.value.issues]
    assert len(rendered) == 2
    assert all(str(tmp_path / "cats.yaml:") in r for r in rendered)
    assert any("did you mean 'prompt'" in r for r in rendered)


def test_plan_counts_prices_and_iterates_jobs(tmp_path: Path) -> None:
    plan = flux_batch.plan(flux_batch.loads(sweep(), base_dir=tmp_path))
    assert (plan.jobs, plan.images) == (3, 3)
    assert plan.cost_usd == pytest.approx(0.009)
    assert [j.vars["color"] for j in plan.iter_jobs()] == ["red", "blue", "green"]


def test_run_results_and_status_on_the_simulator(tmp_path: Path) -> None:
    manifest = flux_batch.loads(sweep(), base_dir=tmp_path)
    seen: list[str] = []
    result = flux_batch.run(manifest, simulator=True, on_event=lambda e, t: seen.append(e.kind))
    assert result.ok and result.simulated
    assert result.counts == {"succeeded": 3} and result.this_run == {"succeeded": 3}
    assert result.images == 3 and result.api_calls["create"] == 3
    assert result.spent_usd == pytest.approx(0.009) and result.cost_usd == pytest.approx(0.009)
    assert result.possible_duplicates == 0 and result.throttled_429 == 0
    assert "job" in seen and "notice" in seen  # the API line reaches the caller as a notice

    rows = flux_batch.results(result.out_dir)
    assert len(rows) == 3 and {r.status for r in rows} == {"succeeded"}
    df = rows.to_pandas()
    assert sorted(df["color"]) == ["blue", "green", "red"]
    assert all(Path(p).is_file() for p in df["path"])
    assert flux_batch.status(result.out_dir).totals == {"succeeded": 3}

    again = flux_batch.run(manifest, simulator=True)
    assert again.api_calls["create"] == 0 and again.this_run == {} and again.counts == result.counts


def test_arun_runs_inside_a_running_event_loop(tmp_path: Path) -> None:
    manifest = flux_batch.loads(sweep(), base_dir=tmp_path)

    async def notebook_cell() -> flux_batch.RunResult:
        return await flux_batch.arun(manifest, simulator=True)

    assert asyncio.run(notebook_cell()).counts == {"succeeded": 3}


def test_run_on_the_api_needs_a_token_and_sends_nothing_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    with pytest.raises(MissingTokenError):
        flux_batch.run(flux_batch.loads(sweep(), base_dir=tmp_path))
    assert not (tmp_path / "out").exists()


def test_a_manifests_own_host_is_refused_without_someone_to_ask(tmp_path: Path) -> None:
    manifest = flux_batch.loads(sweep(api={"base_url": "https://proxy.example/v1"}), base_dir=tmp_path)
    with pytest.raises(UsageError, match="not Replicate's API"):
        flux_batch.run(manifest, token="r8_x")
    with pytest.raises(flux_batch.Declined):
        flux_batch.run(manifest, token="r8_x", ask=lambda question: False)


def test_simulate_runs_on_a_fake_clock_whatever_the_latency(tmp_path: Path) -> None:
    manifest = flux_batch.loads(sweep(), base_dir=tmp_path)
    clock = FakeClock()
    result = simulate(manifest, config=SimConfig(latency=60.0), clock=clock)
    assert result.counts == {"succeeded": 3}
    assert clock.now > FakeClock().now + 20  # a minute of simulated time passed, none of them real


async def test_fake_clock_drive_overlaps_concurrent_sleeps() -> None:
    clock = FakeClock(now=0.0)

    async def two() -> None:
        await asyncio.gather(clock.sleep(5), clock.sleep(3))

    await clock.drive(two())
    assert clock() == 5.0  # not 8: in virtual time the sleeps overlap
    await clock.sleep(1)  # outside drive a sleep moves time at once
    assert clock() == 6.0 and clock.slept == [5, 3, 1]


async def test_asimulate_in_a_running_loop(tmp_path: Path) -> None:
    result = await asimulate(flux_batch.loads(sweep(), base_dir=tmp_path), out=tmp_path / "o")
    assert result.out_dir == tmp_path / "o" and result.ok


def test_the_library_walk_through_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/library.md's Python blocks, in order, in one namespace (the simulator's latency shortened)."""
    text = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    exec(compile("\n".join(blocks), "docs/library.md", "exec"), {"__name__": "walk_through"})
