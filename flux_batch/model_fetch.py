"""``models --fetch``: read a model's input schema from the API and keep it in the user's cache.

One ``GET /models/{owner}/{name}`` per model, through the same client (limits on answer size and time,
errors translated) as a run. The schema is stored with its version id (:mod:`flux_batch.model_cache`), so
every later check of the model's inputs runs offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from flux_batch import model_cache, models
from flux_batch.errors import ProtocolError, UsageError
from flux_batch.model_import import SchemaImportError, from_model_json
from flux_batch.runner.client import ApiClient


async def fetch_schemas(
    names: Iterable[str], http: httpx.AsyncClient, base_url: str, token: str | None
) -> list[tuple[str, Path, str]]:
    """Fetch and cache each model's schema; ``(model, cache file, version id)`` for each."""
    client = ApiClient(http, base_url, token)
    fetched = []
    for name in names:
        try:
            model, version = models.split_ref(name)
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
        fetched.append((model, model_cache.save(schema), str(schema.get("x-version-id", ""))))
    return fetched
