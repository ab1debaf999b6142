"""The models API for the simulated models: ``GET /models/{owner}/{name}``, its versions and one version.

Every answer comes from :mod:`flux_batch.simulator.catalog` (that is, from ``schemas/models/``), except
versions a create named as ``owner/name:<id>``, which the store remembers (see ``Store.version_model``).
"""

from __future__ import annotations

from collections.abc import Mapping

from flux_batch.simulator import views
from flux_batch.simulator.asgi import Request, Response
from flux_batch.simulator.catalog import SimulatedModel
from flux_batch.simulator.config import FaultSpec
from flux_batch.simulator.handlers import not_found
from flux_batch.simulator.store import Store


class ModelHandlers:
    """``/models/{owner}/{name}[/versions[/{id}]]`` over one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _model(self, params: Mapping[str, str]) -> SimulatedModel | Response:
        """The model the path names, or the 404 to answer."""
        name = f"{params['owner']}/{params['name']}"
        model = self.store.catalog.by_name.get(name)
        return model or not_found(f"Model {name} does not exist, or you do not have access to it.")

    async def get(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        model = self._model(params)
        return model if isinstance(model, Response) else Response.json(200, model.model_json())

    async def versions(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        model = self._model(params)
        if isinstance(model, Response):
            return model
        return Response.json(200, views.page_json([model.version_json()], None, None))

    async def version(
        self, request: Request, params: Mapping[str, str], style: views.Style, fired: list[FaultSpec]
    ) -> Response:
        model = self._model(params)
        if isinstance(model, Response):
            return model
        if self.store.version_model(params["version"]) is not model:
            return not_found(f"Version {params['version']} of {model.spec.name} does not exist.")
        return Response.json(200, {**model.version_json(), "id": params["version"]})
