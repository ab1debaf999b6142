"""The runner against the hostile API in process (on a fake clock): every answer it must survive.

Each test names the defect of issue #9/#10 it guards. The served variants (the real transport on loopback,
real time) are in test_hostile_served.py.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hostile_api import CREATE_ANSWERS, HostileApi, Scenario
from runner_harness import YieldingClock, base_jobs, run_session

from flux_batch.errors import EXIT_INVALID, EXIT_JOBS_FAILED, EXIT_OK, ProtocolError
from flux_batch.jobs import Job
from flux_batch.runner.client import ApiClient
from flux_batch.runner.session import SessionResult

#: Create answers that hold a usable id (and something else wrong).
WITH_ID = ("null_status", "unknown_status", "int_created_at")
#: Every request the runner may make: anything else means an id or a path steered it elsewhere.
ALLOWED = re.compile(
    r"^(POST /v1/models/[\w.-]+/[\w.-]+/predictions|POST /v1/predictions|GET /v1/predictions"
    r"|GET /v1/predictions/[0-9a-z]{26}|POST /v1/predictions/[0-9a-z]{26}/cancel"
    r"|GET /files/[0-9a-z]{26}/0.png)$"
)


def hostile(**scenario: Any) -> tuple[HostileApi, YieldingClock]:
    clock = YieldingClock()
    return HostileApi(Scenario(**scenario), clock=clock, sleep=clock.sleep), clock


async def run_on(
    api: HostileApi,
    clock: YieldingClock,
    jobs: Sequence[tuple[Job, float | None]],
    out: Path,
    *,
    base_url: str | None = None,
    **settings: Any,
) -> SessionResult:
    async with api.client() as http:
        return await run_session(http, base_url or api.base_url, jobs, out, clock, **settings)


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def stray_requests(api: HostileApi) -> list[str]:
    return [p for p in api.stats.paths if not ALLOWED.match(p.split("?")[0])]


# -- #9.1 a file host's 404 is not the API saying the output is gone ---------------------------------------


async def test_a_file_host_that_404s_each_first_request_costs_no_prediction(tmp_path: Path) -> None:
    api, clock = hostile(files="404_first", latency=1.0)
    result = await run_on(api, clock, base_jobs(4), tmp_path)
    assert result.counts == {"succeeded": 4} and result.images == 4
    assert api.stats.creates == 4  # was 12 creates and 0 images: each 404 re-created the prediction
    assert stray_requests(api) == []


async def test_a_live_output_that_will_not_download_is_kept_for_the_next_run(tmp_path: Path) -> None:
    api, clock = hostile(files="404_always", latency=1.0)
    result = await run_on(api, clock, base_jobs(3), tmp_path)
    assert result.exit_code == EXIT_JOBS_FAILED
    assert result.counts == {"download_failed": 3}
    assert api.stats.creates == 3
    assert all(r["prediction_id"] and "404" in r["error"] for r in rows(tmp_path))
    api.scenario.files = "ok"  # the file host is back
    again = await run_on(api, clock, base_jobs(3), tmp_path)
    assert again.counts == {"succeeded": 3} and again.images == 3
    assert api.stats.creates == 3  # downloaded, not created again
    assert again.summary["recreated"] == 0


async def test_an_output_the_api_removed_is_created_again_at_most_once_a_run(tmp_path: Path) -> None:
    api, clock = hostile(latency=1.0, retention=0.0, files="404_always")  # removed the moment it is done
    result = await run_on(api, clock, base_jobs(2), tmp_path)
    assert api.stats.creates == 4  # each job: its prediction, and once more when the API said it was gone
    assert result.summary["recreated"] == 2
    assert result.counts == {"expired": 2}
    api.scenario.retention, api.scenario.files = None, "ok"
    again = await run_on(api, clock, base_jobs(2), tmp_path)
    assert again.counts == {"succeeded": 2} and api.stats.creates == 6
    assert again.summary["recreated"] == 2  # this run's one creation again of each


# -- #9.5 a decompression bomb fails the download, clearly, at once ------------------------------------------


async def test_a_decompression_bomb_fails_the_download_and_is_not_kept(tmp_path: Path) -> None:
    api, clock = hostile(files="bomb", latency=1.0)
    result = await run_on(api, clock, base_jobs(3), tmp_path)
    assert result.counts == {"download_failed": 3}  # was: an uncaught Pillow error, jobs left running
    assert api.stats.creates == 3 and api.stats.file_requests == 3  # not fetched again: it cannot help
    assert all("decompression bomb" in r["error"] for r in rows(tmp_path))
    assert not list((tmp_path / "images").rglob("*.png"))


# -- #9.2 an answered create is never ambiguous -------------------------------------------------------------


@pytest.mark.parametrize("answer", WITH_ID)
async def test_an_answered_create_with_an_id_keeps_it(tmp_path: Path, answer: str) -> None:
    api, clock = hostile(create=answer, list="unsupported", latency=1.0)
    result = await run_on(api, clock, base_jobs(3), tmp_path, wait=0)
    assert result.counts == {"succeeded": 3}
    assert api.stats.creates == 3  # was up to 8 each where listing is unsupported
    assert result.summary["ambiguous_creates"] == 0 and result.summary["possible_duplicates"] == 0


@pytest.mark.parametrize(
    "answer",
    [a for a in CREATE_ANSWERS if a not in ("null_status", "unknown_status", "int_created_at", "drop")],
)
async def test_an_answered_create_without_a_usable_id_fails_the_job_once(tmp_path: Path, answer: str) -> None:
    api, clock = hostile(create=answer, latency=1.0)
    result = await run_on(api, clock, base_jobs(3), tmp_path)
    assert result.counts == {"failed": 3} and result.exit_code == EXIT_JOBS_FAILED
    assert api.stats.creates == 3 and api.stats.lists == 0  # not ambiguous: no search, never repeated
    assert stray_requests(api) == []
    for row in rows(tmp_path):
        assert "prediction id" in row["error"] and len(row["error"]) < 500
        assert row["prediction_id"] == ""


# -- #9.4 answers with no end ------------------------------------------------------------------------------


async def test_an_endless_next_chain_is_bounded_and_paced(tmp_path: Path) -> None:
    api, clock = hostile(create="drop", list="endless", latency=1.0)
    started = clock.now
    result = await asyncio.wait_for(
        run_on(api, clock, base_jobs(1), tmp_path, max_create_tries=1), timeout=60
    )
    assert api.stats.creates == 1  # the search never ended, so it never concluded "not created"
    assert result.counts == {"submitted": 1}  # left to be reconciled by the next run
    assert 10 <= api.stats.lists <= 200  # was about 8,000
    # Each page waited for the other-requests limiter (3000 a minute, a burst of 50).
    assert clock.now - started >= (api.stats.lists - 50) / 50


async def test_an_api_answer_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    api, clock = hostile(get="huge", huge_bytes=24 * 1024 * 1024)
    async with api.client() as http:
        client = ApiClient(http, api.base_url, "r8_test", wall_clock=clock)
        created = await client.create("black-forest-labs/flux-schnell", None, {"prompt": "x"}, wait=1)
        with pytest.raises(ProtocolError, match="MiB"):
            await client.get(created.id)


# -- #10.8 a base URL without /v1 --------------------------------------------------------------------------


async def test_a_base_url_without_v1_stops_after_a_few_identical_404s(tmp_path: Path) -> None:
    notices: list[str] = []

    def on_event(event: Any, _tracker: Any) -> None:
        if event.kind == "notice":
            notices.append(event.message)

    api, clock = hostile(latency=1.0)
    base = api.base_url.removesuffix("/v1")
    result = await run_on(
        api, clock, base_jobs(20), tmp_path, base_url=base, max_in_flight=1, on_event=on_event
    )
    assert api.stats.creates == 0 and api.stats.by_route["other"] == 3  # was 20 404s, every job failed
    assert result.exit_code == EXIT_INVALID
    assert "did you mean http://hostile.test/v1" in str(result.result.fatal)
    assert result.counts == {"pending": 20}  # nothing failed for it: run again with the right URL
    assert result.exit_code != EXIT_OK
