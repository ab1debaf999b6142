"""The one-job manifest that reproduces a single report row: same model, same exact input, seed included.

Saved in the output folder (beside report.html), it runs as it is: an upstream image or a local file input
becomes ``{file: <path relative to the output folder>}``. Values are written as JSON scalars, which are
valid YAML and keep every string quoted exactly (a prompt that looks like a number stays a string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from flux_batch.report.data import Row


def _scalar(value: Any) -> str:
    if type(value) is str:  # most values: json's own string encoder, without json.dumps's set-up per call
        return encode_basestring(value)
    return json.dumps(value, ensure_ascii=False)


def _is_file(path: str) -> bool:
    return "://" not in path and not path.startswith("data:")


def _value(key: str, value: Any, image_inputs: Mapping[str, str]) -> str:
    if key in image_inputs and _is_file(image_inputs[key]):
        return "{file: " + _scalar(image_inputs[key]) + "}"
    return _scalar(value)


def one_job_manifest(row: Row, *, run_name: str = "") -> str:
    """A ``version: 1`` manifest with one stage making exactly ``row``'s request, as YAML text."""
    source = f" of {run_name}" if run_name else ""
    lines = [f"# Reproduces job {row.job_id} (stage {row.stage}{source})."]
    if any(_is_file(path) for path in row.image_inputs.values()):
        lines.append("# Save it in the output folder, beside report.html: file paths are relative to it.")
    lines += [
        "version: 1",
        f"name: {_scalar(f'repro-{row.job_id}')}",
        "stages:",
        f"  - id: {_scalar(row.stage)}",
        f"    model: {_scalar(row.model)}",
        "    input:",
    ]
    keys = [k for k in ("prompt", "seed") if k in row.input] + sorted(
        k for k in row.input if k not in ("prompt", "seed")
    )
    lines += [f"      {k}: {_value(k, row.input[k], row.image_inputs)}" for k in keys]
    return "\n".join(lines) + "\n"
