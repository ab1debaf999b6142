"""What an output folder already holds, read without changing it: for ``plan`` and before a ``run``.

The state is read through :mod:`flux_batch.runner.state.store`'s read-only connection (safe beside a running
run): the counts by status of the manifest's jobs, the spend so far, and which manifest the folder
belongs to (recorded by each run in the state's ``meta`` table; folders from before that record are
read from their ``run.json``), and the record of the manifest checks its last run passed
(:func:`earlier_checks`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_batch.errors import StateError, UsageError
from flux_batch.jobs.expand import stage_job_ids
from flux_batch.jobs.fingerprint import manifest_fingerprint
from flux_batch.manifest import Manifest
from flux_batch.runner.session import CHECKS_META_KEY, OWNER_META_KEY
from flux_batch.runner.state import queries
from flux_batch.runner.state.store import STATE_FILE, done_counts, open_readonly


@dataclass(frozen=True)
class Folder:
    """An output folder as a run would find it. ``done`` is None when it has no state yet."""

    path: Path
    done: Callable[[str], dict[str, int]] | None
    spent_usd: float
    owner: Mapping[str, Any] | None
    fingerprint: str = ""  # the manifest's (flux_batch.jobs.fingerprint): what its jobs depend on

    @property
    def has_state(self) -> bool:
        return self.done is not None


def read_folder(out_dir: Path, manifest: Manifest) -> Folder:
    """The folder ``out_dir`` as ``manifest`` would find it (counts of its jobs, spend, owner)."""
    fingerprint = manifest_fingerprint(manifest)
    done = done_counts(out_dir, lambda: stage_job_ids(manifest), fingerprint=fingerprint)
    if done is None:
        return Folder(out_dir, None, 0.0, _owner_from_run_json(out_dir), fingerprint)
    db = open_readonly(out_dir)
    if db is None:  # removed in between
        return Folder(out_dir, None, 0.0, None, fingerprint)
    try:
        spent = queries.spent_usd(db)
        recorded = queries.meta(db, OWNER_META_KEY)
    except sqlite3.Error as exc:
        raise StateError(f"{out_dir / STATE_FILE}: cannot read the state ({exc})") from exc
    finally:
        db.close()
    owner = recorded if isinstance(recorded, dict) else None
    return Folder(out_dir, done, spent, owner or _owner_from_run_json(out_dir), fingerprint)


def earlier_checks(out_dir: Path) -> Any:
    """What the folder's last run recorded of its manifest's checks
    (:func:`flux_batch.jobs.checks.check_record`); None when there is none, or the state cannot be read
    (then the checks are simply done, and the run reports the state's problem)."""
    try:
        db = open_readonly(out_dir)
    except (StateError, OSError):
        return None
    if db is None:
        return None
    try:
        return queries.meta(db, CHECKS_META_KEY)
    except sqlite3.Error:
        return None
    finally:
        db.close()


def owner_record(manifest: Manifest) -> dict[str, Any]:
    """What a run records as the folder's manifest: its name (the identity) and where it was."""
    return {"name": manifest.name, "path": str(manifest.path.resolve())}


def check_owner(folder: Folder, manifest: Manifest, *, switch: bool) -> None:
    """Refuse to run ``manifest`` in a folder that holds another manifest's run, unless ``switch``.

    Manifests are told apart by ``name`` (an edited manifest keeps its name and its folder). Running
    another one here would take the first one's rows out of the CSV files and the report.
    """
    if switch or not folder.owner or folder.owner.get("name") in (None, manifest.name):
        return
    where = f" ({folder.owner['path']})" if folder.owner.get("path") else ""
    raise UsageError(
        f"{folder.path} holds the run of another manifest, {folder.owner['name']!r}{where}; running "
        f"{manifest.name!r} there would take its rows out of manifest.csv, metadata.parquet and the report: "
        f"give another --out, or add --switch-manifest to make the folder {manifest.name!r}'s"
    )


def _owner_from_run_json(out_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
        manifest = data["manifest"]
        return {"name": manifest["document"]["name"], "path": manifest.get("path")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
