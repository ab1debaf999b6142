"""``flux-batch models``: the known models (built in and fetched), and ``--fetch`` to add any model."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from flux_batch.errors import EXIT_OK, UsageError
from flux_batch.manifest.api_url import DEFAULT_BASE_URL, BaseUrlError, check_base_url
from flux_batch.manifest.template import format_value
from flux_batch.models import cache, catalog
from flux_batch.runner.model_fetch import fetch_schemas
from flux_batch.runner.prepare import read_token

SIMULATOR_URL = "http://simulator.invalid/v1"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser(
        "models", help="list the known models with their inputs, defaults and prices; --fetch adds one"
    )
    p.add_argument("--json", action="store_true", help="print the model schemas as JSON")
    p.add_argument(
        "--fetch",
        nargs="+",
        metavar="OWNER/NAME",
        help="read these models' input schemas from the API (token from $REPLICATE_API_TOKEN) into the "
        "cache, so their inputs are checked offline afterwards",
    )
    p.add_argument("--base-url", help=f"the API to fetch from (default {DEFAULT_BASE_URL})")
    p.add_argument("--simulator", action="store_true", help="fetch from the built-in simulator")
    p.set_defaults(func=models_command)


def models_command(args: argparse.Namespace) -> int:
    if args.fetch:
        for model, path, version in asyncio.run(_fetch(args)):
            shown = f"version {version[:12]}" if version else "no version id"
            print(f"{model}: schema cached ({shown}) in {path}")
        return EXIT_OK
    known = {**catalog.known_models()}
    for name in cache.cached_names():
        spec = cache.cached_spec(name)
        if spec is not None and name not in known:
            known[name] = spec
    if args.json:
        print(json.dumps({name: spec.schema for name, spec in known.items()}, indent=2))
        return EXIT_OK
    for spec in known.values():
        price = "unpriced: set prices: in the manifest" if spec.price is None else spec.price.describe()
        output = "a list of URLs" if spec.output == "list" else "one URL"
        typical = "time unknown" if spec.typical_s is None else f"typically {spec.typical_s:g} s"
        print(f"{spec.name}  ({spec.title}; {price}; {typical}; output: {output})")
        for name, rule in spec.inputs.items():
            print(f"  {name:<24} {_describe_input(rule)}")
        print()
    print(
        "Other owner/name models run unchecked: `flux-batch models --fetch owner/name` caches their "
        "schema; price them in the manifest with prices: {owner/name: 0.01}."
    )
    return EXIT_OK


async def _fetch(args: argparse.Namespace) -> list[Any]:
    if args.simulator:
        from flux_batch.simulator import SimConfig, create_app

        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(SimConfig(latency=0))))
        base_url, token = SIMULATOR_URL, "simulator"
    else:
        try:
            base_url = check_base_url(args.base_url or DEFAULT_BASE_URL)
        except BaseUrlError as exc:
            raise UsageError(f"--base-url: {exc}") from exc
        http = httpx.AsyncClient()
        token = read_token("REPLICATE_API_TOKEN", os.environ)
    async with http:
        return await fetch_schemas(args.fetch, http, base_url, token)


def _describe_input(rule: Mapping[str, Any]) -> str:
    kind = str(rule.get("type", "any"))
    if "enum" in rule:
        kind = " | ".join(str(v) for v in rule["enum"])
    elif "minimum" in rule or "maximum" in rule:
        kind += f" {rule.get('minimum', '')}..{rule.get('maximum', '')}"
        if "multipleOf" in rule:
            kind += f" (x{rule['multipleOf']})"
    elif "maxItems" in rule:
        kind += f" (at most {rule['maxItems']})"
    if "default" in rule:
        kind += f"  [default {format_value(rule['default'])}]"
    return kind
