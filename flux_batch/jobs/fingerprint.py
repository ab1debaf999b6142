"""A manifest's fingerprint: one hash of everything the jobs it expands to depend on.

Resuming a folder expands the manifest again and loads every job into the state, to find what is left;
at 100,000 jobs that was most of the 20 s before the first create. When the fingerprint is the one the
state recorded after its last complete load, the jobs are those already in the state, and the load is
skipped (:func:`flux_batch.runner.session.ingest`, which also checks a sample of jobs against the state).

The hash covers what the loaded manifest's jobs come from (every field of every stage, sweep, template and
input, with the contents of the files it read: prompt lists, cases, the sha256 of local images; the
defaults, variables and base seed), the schema and price of every model its jobs use (they decide which
inputs a job keeps and its estimated cost; a schema file's or fetched model's too), flux-batch's
version and the source of the modules that turn a manifest into jobs. API settings, the budget and the
output folder change no job, and are left out. A value it cannot represent stably makes the fingerprint
differ on every run, which only means the load is never skipped.

:func:`checks_fingerprint` adds to it what the manifest's job checks (:mod:`flux_batch.jobs.checks`)
depend on besides: the job limit and the checks' own code. A run records it in its folder, and resuming
that folder with the very same manifest trusts those checks instead of doing them again (at 100,000 jobs,
most of the rest of the start-up).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path, PurePath
from typing import Any

from flux_batch import __version__

#: The manifest's fields that its jobs depend on (not its API settings, budget, retry flags or output).
MANIFEST_FIELDS = ("path", "name", "base_seed", "defaults", "vars", "stages", "prices")
#: Modules whose code decides a job's id, seed, input and order.
EXPANSION_MODULES = (
    "flux_batch.jobs.expand", "flux_batch.jobs.ids", "flux_batch.jobs.job", "flux_batch.manifest.sweep",
    "flux_batch.manifest.template", "flux_batch.jobs.fingerprint",
)  # fmt: skip
#: Modules whose code decides what the job checks find, besides the expansion's.
CHECK_MODULES = ("flux_batch.jobs.checks", "flux_batch.models.catalog")


def manifest_fingerprint(manifest: Any) -> str:
    """The fingerprint of a loaded :class:`flux_batch.manifest.model.Manifest`."""
    digest = hashlib.sha256()
    _feed(digest, {"version": __version__, "code": _code_hash(EXPANSION_MODULES)})
    # each model's schema and price: which inputs a job keeps and its estimated cost come from them
    _feed(digest, {name: manifest.spec(name) for name in manifest.model_names()})
    _feed(digest, {name: getattr(manifest, name) for name in MANIFEST_FIELDS})
    return digest.hexdigest()


def checks_fingerprint(manifest: Any) -> str:
    """What the job checks of a loaded manifest depend on: its fingerprint, its job limit (``max_jobs``,
    the command line's included) and the checks' code."""
    digest = hashlib.sha256()
    _feed(digest, [manifest_fingerprint(manifest), manifest.max_jobs, _code_hash(CHECK_MODULES)])
    return digest.hexdigest()


def _code_hash(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        source = getattr(import_module(name), "__file__", None)
        digest.update(Path(source).read_bytes() if source else name.encode())
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest`` as a tagged token stream: types, lengths and order all count."""
    if value is None or isinstance(value, (bool, int, float, str)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"@{type(value).__qualname__}({len(dataclasses.fields(value))}".encode())
        for field in dataclasses.fields(value):
            digest.update(f"{field.name}=".encode())
            _feed(digest, getattr(value, field.name))
        digest.update(b")")
    elif isinstance(value, Mapping):
        digest.update(f"{{{len(value)}".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(f"[{len(value)}".encode())
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif isinstance(value, (set, frozenset)):
        items = sorted(repr(item) for item in value)
        digest.update(f"<{len(items)}{items!r}>".encode())
    elif isinstance(value, PurePath):
        digest.update(f"path:{value.as_posix()!r};".encode())
    else:  # a repr with an address changes every run: then the load is simply never skipped
        digest.update(f"?{type(value).__qualname__}:{value!r};".encode())
