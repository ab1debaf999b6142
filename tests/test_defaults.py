"""The defaults are defined once (flux_batch.defaults); the schema that editors read states the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flux_batch import defaults
from flux_batch.durations import parse_duration
from flux_batch.manifest import ApiSettings
from flux_batch.resources import load_schema
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.session import ApiTarget
from flux_batch.simulator import SimConfig


def _schema() -> dict:
    return load_schema("manifest.schema.json")


def test_the_schemas_api_defaults_are_the_api_settings_defaults() -> None:
    api = _schema()["$defs"]["api"]["properties"]
    settings = ApiSettings()
    for field in dataclasses.fields(ApiSettings):
        name = "deadline" if field.name == "deadline_s" else field.name
        assert name in api, f"api.{name} is not in the schema"
        written = api[name]["default"]
        if name == "deadline":
            written = parse_duration(written)
        assert written == getattr(settings, field.name), f"api.{name}"


def test_the_schemas_top_level_defaults_match() -> None:
    props = _schema()["properties"]
    assert props["max_jobs"]["default"] == defaults.MAX_JOBS
    assert props["api"]["$ref"].endswith("/api")


def test_the_runner_and_the_simulator_start_from_the_same_numbers() -> None:
    settings = RunSettings(out_dir=Path("."))
    assert (settings.max_in_flight, settings.wait, settings.deadline_s) == (
        defaults.MAX_IN_FLIGHT,
        defaults.WAIT_S,
        defaults.DEADLINE_S,
    )
    target = ApiTarget("http://x/v1", None)
    assert (target.create_rpm, target.other_rpm, target.burst) == (
        defaults.CREATE_RPM,
        defaults.OTHER_RPM,
        defaults.BURST,
    )
    sim = SimConfig()
    assert (sim.create_rpm, sim.other_rpm, sim.burst, sim.max_wait) == (
        defaults.CREATE_RPM,
        defaults.OTHER_RPM,
        defaults.BURST,
        defaults.MAX_WAIT_S,
    )
