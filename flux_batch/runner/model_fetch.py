"""``models --fetch``: read a model's input schema from the API and keep it in the user's cache.

One ``GET /models/{owner}/{name}`` per model, through the same client (limits on answer size and time,
errors translated) as a run. The schema is stored with its version id (:mod:`flux_batch.models.cache`), so
every later check of the model's inputs runs offline. ``run`` fetches the manifest's models that have no
schema by itself when it has a token for Replicate's API (or this machine's); ``validate --fetch`` when
asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from flux_batch.errors import FluxBatchError, NotFoundError, ProtocolError, UsageError
from flux_batch.manifest import Manifest
from flux_batch.models import cache, catalog
from flux_batch.models.schema_import import SchemaImportError, from_model_json
from flux_batch.runner.client import ApiClient


async def fetch_schemas(
    names: Iterable[str], http: httpx.AsyncClient, base_url: str, token: str | None
) -> list[tuple[str, Path, str]]:
    """Fetch and cache each model's schema; ``(model, cache file, version id)`` for each."""
    client = ApiClient(http, base_url, token)
    fetched = []
    for name in names:
        try:
            model, version = catalog.split_ref(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if version:
            raise UsageError(f"fetch {model} without a version: the latest version's schema is read")
        answer = await client.model(model)
        try:
            schema = from_model_json(answer, source=f"{client.base_url}/models/{model}")
        except SchemaImportError as exc:
            raise ProtocolError(f"GET /models/{model}: {exc}") from exc
        if schema["x-model"] != model:
            raise ProtocolError(f"GET /models/{model} answered for another model, {schema['x-model']}")
        fetched.append((model, cache.save(schema), str(schema.get("x-version-id", ""))))
    return fetched


def unknown_models(manifest: Manifest) -> list[str]:
    """The models of a manifest without a schema (built in, fetched or named in the manifest)."""
    names = dict.fromkeys(catalog.split_ref(r)[0] for s in manifest.stages for r in s.models)
    return [n for n in names if catalog.MODEL_REF.match(n) and not manifest.spec(n).known]


def fetch_unknown(
    manifest: Manifest, http: httpx.AsyncClient, base_url: str, token: str, say: Callable[[str], None]
) -> bool:
    """Fetch the schema of every model of ``manifest`` that has none; True when one was fetched (load the
    manifest again to check those models' inputs). A model the API does not know is an error; any other
    failure is told and the run goes on unchecked, as before."""
    missing = unknown_models(manifest)
    if not missing:
        return False

    async def fetch() -> list[tuple[str, Path, str]]:
        async with http:
            return await fetch_schemas(missing, http, base_url, token)

    try:
        fetched = asyncio.run(fetch())
    except NotFoundError as err:
        raise UsageError(f"{err}; nothing submitted") from err
    except FluxBatchError as err:
        say(f"flux-batch: could not fetch the schema of {', '.join(missing)} ({err}): inputs unchecked")
        return False
    for model, path, _ in fetched:
        say(f"flux-batch: fetched the schema of {model} into {path}")
    return True
