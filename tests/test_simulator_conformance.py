"""Conformance against Replicate's own description, by a tool we did not write: a bounded schemathesis run
over every operation the simulator implements, with the checks "no server error", "status code
conformance", "content type" and "response schema".

The description is the project's fixture with its known bugs patched (tests/openapi_spec.py). Two
additions make the run reach past 404s and 422s, and both come from the API itself: each simulated model
gets its own create operation whose ``input`` is the model's published input schema (what
``GET /models/{owner}/{name}`` serves), and path parameters and ``version`` are drawn, most of the time,
from ids that exist (models, versions, predictions and files made before the run).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec import patched

from flux_batch.simulator import SimConfig, create_app
from flux_batch.simulator.catalog import default_catalog
from flux_batch.simulator.server import serve_in_thread

pytestmark = pytest.mark.slow
TOKEN = "r8_conformance"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 25
SEED = 11


def with_model_operations(spec: dict[str, Any]) -> dict[str, Any]:
    """The description plus ``POST /models/{owner}/{name}/predictions`` spelled out for each simulated
    model, with the model's own ``Input`` schema as ``input``."""
    template = spec["paths"]["/models/{model_owner}/{model_name}/predictions"]["post"]
    for name, model in sorted(default_catalog().by_name.items()):
        operation = copy.deepcopy(template)
        operation["operationId"] = f"models.predictions.create.{model.name}"
        operation["parameters"] = [p for p in operation["parameters"] if p.get("in") != "path"]
        body = copy.deepcopy(spec["components"]["schemas"]["schemas_prediction_request"])
        body["properties"]["input"] = {
            **model.openapi_schema["components"]["schemas"]["Input"],
            "additionalProperties": False,
        }
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
        spec["paths"][f"/models/{name}/predictions"] = {"post": operation}
    return spec


def existing_ids(http: httpx.Client) -> dict[str, list[str]]:
    """Predictions (one canceled) and files to look up during the run."""
    predictions = [
        http.post(f"/models/{name}/predictions", json={"input": {"prompt": "a fox"}}).json()["id"]
        for name in sorted(default_catalog().by_name)
    ]
    http.post(f"/predictions/{predictions[0]}/cancel")
    files = [
        http.post("/files", files={"content": (f"f{i}.txt", b"x" * i, "text/plain")}).json()["id"]
        for i in range(1, 4)
    ]
    return {"predictions": predictions, "files": files}


def config_toml(ids: dict[str, list[str]]) -> str:
    catalog = default_catalog()
    versions = [m.version_id for m in catalog.by_name.values()]
    pinned = [f"{m.spec.name}:{m.version_id}" for m in catalog.by_name.values()]
    refs = versions + pinned + list(catalog.by_name)
    dictionaries = {
        "owners": sorted({m.owner for m in catalog.by_name.values()}),
        "names": sorted(m.name for m in catalog.by_name.values()),
        "versions": versions,
        "refs": refs,
        "predictions": ids["predictions"],
        "files": ids["files"],
    }
    bindings = {
        "path.model_owner": "owners",
        "path.model_name": "names",
        "path.version_id": "versions",
        "path.prediction_id": "predictions",
        "path.file_id": "files",
        "body.version": "refs",
    }
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.8 }}' for key, name in bindings.items()]
    return "\n".join(lines) + "\n"


def test_schemathesis_finds_no_server_error_or_nonconformance(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is a test extra: pip install -e '.[test]'"
    (tmp_path / "openapi.json").write_text(json.dumps(with_model_operations(patched())), encoding="utf-8")
    app = create_app(SimConfig(latency=0, create_rpm=0, other_rpm=0, max_wait=1, seed=SEED))
    with serve_in_thread(app) as base:
        with httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            (tmp_path / "schemathesis.toml").write_text(config_toml(existing_ids(http)), encoding="utf-8")
        started = time.monotonic()
        result = subprocess.run(
            [
                st,
                "--config-file",
                str(tmp_path / "schemathesis.toml"),
                "run",
                str(tmp_path / "openapi.json"),
                "--url",
                f"{base}/v1",
                "--checks",
                CHECKS,
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--report",
                "json",
                "--report-json-path",
                str(tmp_path / "report.json"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        elapsed = time.monotonic() - started
        stats = app.stats()
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    summary = (
        f"schemathesis: {report['test_cases']['generated']} cases over {report['operations']['tested']} "
        f"operations in {elapsed:.1f} s; {stats['predictions_created']} predictions created"
    )
    print(summary)
    assert result.returncode == 0, "\n".join(result.stdout.splitlines()[-80:])
    assert report["operations"]["tested"] == report["operations"]["total"] >= 20
    assert report["test_cases"]["with_failures"] == 0 and not report["errors"]
    codes = {code for route in stats["requests"].values() for code in route}
    assert not {c for c in codes if c.startswith("5")}, stats["requests"]
    assert {"200", "201", "204", "404", "422"} <= codes  # the run reached success and failure paths
    assert stats["predictions_created"] > 100, summary
