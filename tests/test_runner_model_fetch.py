"""Any Replicate model: ``models --fetch`` into the cache, schema files in a manifest, and the simulator
simulating a model whose schema it is given."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest
from cli_helpers import fake_api
from served import simulator_process

from flux_batch import load
from flux_batch.cli import main
from flux_batch.errors import ManifestError
from flux_batch.models.catalog import check_input, get_model, spec_from_schema
from flux_batch.models.schema_import import from_model_json
from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.catalog import catalog_with, openapi_schema
from flux_batch.simulator.config import load_profile

LORA = "someone/my-flux-lora"
INPUT = {
    "type": "object",
    "title": "Input",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "lora_scale": {"type": "number", "minimum": 0, "maximum": 1, "default": 1, "x-order": 2},
        "image": {"type": "string", "format": "uri", "x-order": 3},
        "aspect_ratio": {
            "allOf": [{"$ref": "#/components/schemas/aspect_ratio"}],
            "default": "1:1",
            "x-order": 1,
        },
    },
}
MODEL_JSON = {
    "owner": "someone",
    "name": "my-flux-lora",
    "description": "a LoRA",
    "latest_version": {
        "id": "a" * 64,
        "openapi_schema": {
            "components": {
                "schemas": {
                    "Input": INPUT,
                    "Output": {"type": "array", "items": {"type": "string", "format": "uri"}},
                    "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9"]},
                }
            }
        },
    },
}


def test_a_published_schema_becomes_a_checked_model() -> None:
    schema = from_model_json(MODEL_JSON, source="https://api.replicate.com/v1/models/someone/my-flux-lora")
    assert list(schema["properties"]) == ["prompt", "aspect_ratio", "lora_scale", "image"]  # x-order
    assert schema["properties"]["aspect_ratio"]["enum"] == ["1:1", "16:9"]  # the $ref resolved
    assert schema["x-output"] == "list" and schema["x-image-inputs"] == ["image"]
    assert schema["x-version-id"] == "a" * 64
    spec = get_model(LORA, None, {LORA: spec_from_schema(schema)})
    assert [p.message for p in check_input(spec, {"prompt": "x", "lora_scale": 2})] == [
        "2 is out of range (allowed 0 to 1)"
    ]


def test_fetch_from_the_simulator_caches_the_schema_and_checks_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--simulator", "--fetch", "black-forest-labs/flux-2-dev"]) == 0
    assert "black-forest-labs/flux-2-dev: schema cached (version" in capsys.readouterr().out
    assert main(["models", "--simulator", "--fetch", "someone/nothing"]) == 2
    assert "Model someone/nothing does not exist" in capsys.readouterr().err


def test_a_fetched_model_is_checked_offline_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "profile.yaml"
    (tmp_path / "lora.json").write_text(json.dumps(MODEL_JSON), encoding="utf-8")
    profile.write_text(f"models: {{{LORA}: lora.json}}\n", encoding="utf-8")
    config = load_profile(profile)
    app = create_app(config)
    real = httpx.AsyncClient
    monkeypatch.setattr(
        "flux_batch.cli.models_cmd.httpx.AsyncClient",
        lambda **kw: real(transport=httpx.ASGITransport(app=app)),
    )
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nname: t\nstages:\n  - id: a\n    model: {LORA}\n    prompt: x\n"
        "    input: {lora_scale: 3}\n",
        encoding="utf-8",
    )
    assert load(manifest).warnings  # not known yet: unchecked, a warning
    assert main(["models", "--base-url", "http://sim/v1", "--fetch", LORA]) == 0
    with pytest.raises(ManifestError, match=r"lora_scale: 3 is out of range \(allowed 0 to 1\)"):
        load(manifest)


def test_a_manifest_names_a_schema_file(tmp_path: Path) -> None:
    (tmp_path / "lora.json").write_text(
        json.dumps(
            INPUT
            | {"properties": {**INPUT["properties"], "aspect_ratio": {"type": "string", "enum": ["1:1"]}}}
        ),
        encoding="utf-8",
    )
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nname: t\nschemas: {{{LORA}: lora.json}}\nstages:\n  - id: a\n    model: {LORA}\n"
        "    prompt: x\n    input: {lora_scal: 0.5}\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError, match=r"has no input 'lora_scal'.*did you mean 'lora_scale'"):
        load(manifest)
    manifest.write_text(manifest.read_text().replace("lora.json", "nothing.json"), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"file not found: nothing\.json"):
        load(manifest)


def test_run_on_the_simulator_with_a_model_it_only_knows_from_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "lora.json").write_text(json.dumps(MODEL_JSON), encoding="utf-8")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nname: t\nschemas: {{{LORA}: lora.json}}\nprices: {{{LORA}: 0.01}}\nstages:\n"
        f"  - id: a\n    model: {LORA}\n    prompt: a {{x}}\n    matrix: {{x: [cat, dog]}}\n"
        "    input: {aspect_ratio: '16:9'}\n"
        "  - id: b\n    model: other/no-schema\n    prompt: y\n",
        encoding="utf-8",
    )
    assert main(["run", str(manifest), "--simulator", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open(encoding="utf-8")))
    assert [(r["model"], r["status"], r["width"], r["height"]) for r in rows] == [
        (LORA, "succeeded", "1360", "768"),
        (LORA, "succeeded", "1360", "768"),
        ("other/no-schema", "succeeded", "1024", "1024"),
    ]


def test_the_simulator_serves_a_given_model_as_cog_would() -> None:
    spec = spec_from_schema(from_model_json(MODEL_JSON))
    app = create_app(SimConfig(latency=0, models=(spec,)))
    assert app.store.catalog.by_name[LORA].openapi_schema == openapi_schema(spec)


@pytest.mark.slow
def test_models_fetch_against_the_served_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test")
    with simulator_process() as base_url:
        assert main(["models", "--base-url", base_url, "--fetch", "black-forest-labs/flux-2-pro"]) == 0
    assert "black-forest-labs/flux-2-pro: schema cached" in capsys.readouterr().out
    assert main(["models"]) == 0


def test_run_with_a_token_fetches_a_model_without_schema_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nname: t\nstages:\n  - id: a\n    model: black-forest-labs/flux-2-klein-9b-base\n"
        "    prompt: x\n    input: {guidance: 20}\n",
        encoding="utf-8",
    )
    # the model is built in: copy it under another name, known to the API but not to flux-batch
    with fake_api(monkeypatch) as api:
        spec = get_model("black-forest-labs/flux-2-klein-9b-base")
        other = spec_from_schema({**dict(spec.schema or {}), "x-model": "someone/klein-copy"})
        api.app.store.catalog = catalog_with((other,))
        manifest.write_text(manifest.read_text().replace(spec.name, "someone/klein-copy"), encoding="utf-8")
        assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet", "--yes"]) == 2
        assert api.created == 0  # refused before anything was created: guidance 20 is out of range
    err = capsys.readouterr().err
    assert "guidance: 20 is out of range (allowed 1 to 10)" in err
    assert main(["validate", str(manifest)]) == 2  # offline now: the schema is in the cache
