"""Picks become the next run: a manifest that makes the picked images again, changed as asked.

The report's picks file names images of an output folder (by job id and file); :func:`refine_manifest`
reads those rows back from ``manifest.csv`` and writes a ``version: 1`` manifest with the same prompts and
seeds (and the other inputs each job was sent), on another model (``model``), with inputs set or
overridden (``sets``: a higher ``resolution``, ``megapixels``, ...) and ``seeds`` seeds per pick (the
original first). Inputs the new model does not take are left out and listed in the returned notes, so the
manifest validates; the CLI loads it before writing it in place.

Each pick is one case of a stage (``cases:`` pairs a prompt, a seed and its inputs). Image inputs (an edit's
upstream image, a local file) cannot be case values, so picks with the same image inputs share a stage that
sets them in ``input:`` as ``{file: ...}``, relative to the new manifest.

    {"flux_batch_picks": 1, "run": "explore", "picks": [{"job_id": "3f2a9c1d0b7e4a65", "file_name": "..."}]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError
from flux_batch.models import catalog
from flux_batch.report.data import Folder, Row
from flux_batch.report.repro import _is_file, _scalar

#: A seed the models take (Replicate's FLUX models: a 32-bit signed integer is always accepted).
MAX_SEED = 2**31 - 1
PICKS_FORMAT = 1
#: The case variable holding a pick's prompt (the stage's template is ``"{text}"``).
PROMPT_VAR = "text"
#: The key of a case's source job id, written as a comment after the case (not a variable).
PICK = "\0pick"


@dataclass(frozen=True)
class Refined:
    """The refined manifest as YAML text, how many picks and jobs it holds, and notes for the user."""

    text: str
    picks: int
    jobs: int
    notes: tuple[str, ...]


def read_picks(path: Path) -> list[Mapping[str, str]]:
    """The picks of a file the report exported (a JSON object with ``picks``, or a bare list; a text file
    of job ids, one a line, works too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read picks file {path}: {exc}") from exc
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = [{"job_id": line.strip()} for line in text.splitlines() if line.strip()]
    picks = data.get("picks") if isinstance(data, Mapping) else data
    if not isinstance(picks, list) or not all(isinstance(p, Mapping) and p.get("job_id") for p in picks):
        raise UsageError(
            f"{path} is not a picks file: export one from the report's Picks panel (a JSON object whose "
            '"picks" list has a "job_id" for each image)'
        )
    if not picks:
        raise UsageError(f"{path} has no picks: mark images in the report (key p) and export them again")
    return [{"job_id": str(p["job_id"]), "file_name": str(p.get("file_name") or "")} for p in picks]


def picked_rows(folder: Folder, picks: Sequence[Mapping[str, str]]) -> list[Row]:
    """The rows of ``folder`` the picks name, in the picks' order; UsageError naming any not found."""
    wanted = {(p["job_id"], p.get("file_name", "")) for p in picks}
    jobs = {p["job_id"] for p in picks}
    found: dict[tuple[str, str], Row] = {}
    for raw in folder.raw_rows():
        if raw.get("job_id") in jobs:
            row = folder.row(raw)
            found.setdefault((row.job_id, row.file_name), row)
            found.setdefault((row.job_id, ""), row)
    missing = [key[0] for key in wanted if key not in found]
    if missing:
        raise UsageError(
            f"{len(missing)} pick(s) are not in {folder.csv_path} (first: job {missing[0]}): "
            "export the picks from this folder's report"
        )
    rows = [found[(p["job_id"], p.get("file_name", ""))] for p in picks]
    return list({(r.job_id, r.file_name): r for r in rows}.values())


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs, each value read as YAML (``resolution=2`` is a number, ``go_fast=false`` a
    boolean); an empty value (``key=``) removes the input."""
    import yaml

    sets: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: give key=value, e.g. --set resolution=2")
        try:
            sets[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return sets


def refine_manifest(
    rows: Sequence[Row],
    *,
    out_dir: Path,
    manifest_dir: Path,
    run_name: str,
    model: str | None = None,
    sets: Mapping[str, Any] | None = None,
    seeds: int = 1,
) -> Refined:
    """The manifest that makes ``rows`` again as asked (see the module docstring). Pure apart from the
    model specs it looks up; ``manifest_dir`` is where it will be saved (file paths are relative to it)."""
    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: give 1 or more seeds per pick")
    sets = dict(sets or {})
    notes: list[str] = []
    dropped: dict[tuple[str, str], int] = {}
    groups: dict[tuple[tuple[str, str | tuple[str, ...]], ...], list[dict[str, Any]]] = {}
    for row in rows:
        target = model or row.model
        spec = catalog.get_model(catalog.split_ref(target)[0]) if target else None
        images: dict[str, str | tuple[str, ...]] = {}  # a list input's images as a tuple
        values: dict[str, Any] = {PICK: row.job_id}
        if model is None and row.model:
            values["model"] = row.model
        values[PROMPT_VAR] = row.prompt
        for key, value in {**row.input, **sets}.items():
            if key in ("prompt", "seed") or value is None:
                continue
            if spec is not None and spec.known and key not in spec.inputs:
                dropped[(target, key)] = dropped.get((target, key), 0) + 1
                continue
            if key in row.image_inputs and key not in sets:
                paths = [_relative(p, out_dir, manifest_dir) for p in row.image_inputs[key].split(";")]
                is_list = spec is not None and key in spec.list_image_inputs
                images[key] = tuple(paths) if is_list or len(paths) > 1 else paths[0]
            elif isinstance(value, (str, int, float, bool)):
                values[key] = value
            else:
                notes.append(f"job {row.job_id}: input {key!r} is not a single value and is left out")
        base_seed = row.seed if row.seed is not None else 0
        group = groups.setdefault(tuple(sorted(images.items())), [])
        for k in range(seeds):
            case = dict(values)
            if row.seed is not None or seeds > 1:
                case["seed"] = (base_seed + k) % (MAX_SEED + 1)
            group.append(case)
    for (name, key), count in sorted(dropped.items()):
        notes.append(f"{name} has no input {key!r}: left out of {count} pick(s)")
    text = _render(groups, model, run_name, len(rows), seeds)
    return Refined(text, len(rows), sum(len(c) for c in groups.values()), tuple(notes))


def _relative(path: str, out_dir: Path, manifest_dir: Path) -> str:
    if not _is_file(path):
        return path
    full = Path(path) if os.path.isabs(path) else out_dir / path
    return Path(os.path.relpath(full.resolve(), manifest_dir.resolve())).as_posix()


def _render(
    groups: Mapping[tuple[tuple[str, str | tuple[str, ...]], ...], list[dict[str, Any]]],
    model: str | None,
    run_name: str,
    picks: int,
    seeds: int,
) -> str:
    each = f", {seeds} seeds each (the original first)" if seeds > 1 else ", same seeds"
    lines = [
        f"# Refines {picks} pick(s) of {run_name}: same prompts{each}"
        + (f", on {model}." if model else ", same models."),
        "# Each case is one picked image (its job id after it): edit any input, then `flux-batch plan` it.",
        "version: 1",
        f"name: {_scalar(f'{run_name}-refined')}",
        "stages:",
    ]
    for n, (images, cases) in enumerate(groups.items()):
        lines.append(f"  - id: {'refine' if n == 0 else f'refine_{n + 1}'}")
        if model:
            lines.append(f"    model: {_scalar(model)}")
        lines.append(f'    prompt: "{{{PROMPT_VAR}}}"')
        if images:
            lines.append("    input:")
            for key, paths in images:
                files = _file(paths) if isinstance(paths, str) else "[" + ", ".join(map(_file, paths)) + "]"
                lines.append(f"      {key}: {files}")
        lines.append("    cases:")
        for case in cases:
            values = ", ".join(f"{k}: {_scalar(v)}" for k, v in case.items() if k != PICK)
            lines.append(f"      - {{{values}}}  # pick {case[PICK]}")
    return "\n".join(lines) + "\n"


def _file(path: str) -> str:
    return "{file: " + _scalar(path) + "}" if _is_file(path) else _scalar(path)
