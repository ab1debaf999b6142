"""The models flux-batch knows: what each takes, costs and makes, read alike by the manifest's checks, the
plan, the runner and the simulator.

``catalog`` (the known models from ``schemas/models/`` and the user's cache, and every input checked against
its model's schema), ``pricing`` (what one prediction costs, per image or per megapixel), ``sizes`` (the
size and megapixels an input asks for), ``schema_import`` (a model's published schema as flux-batch's), and
``cache`` (the fetched schemas kept in the user's cache; :mod:`flux_batch.runner.model_fetch` fetches them).
"""
