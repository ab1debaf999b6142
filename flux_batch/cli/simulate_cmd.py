"""``flux-batch simulate``: serve the Replicate-compatible simulator on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from flux_batch.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="serve a Replicate-compatible simulator (no token, no cost)",
        description=(
            "Serve a simulator of the Replicate predictions API at /v1 (Replicate style) and /replicate/v1 "
            "(proxy style). Flags override the --profile file. See docs/simulator.md."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8787, help="port to listen on (default 8787; 0: any free)"
    )
    parser.add_argument("--profile", metavar="FILE", help="YAML profile with settings and faults")
    parser.add_argument(
        "--latency", metavar="SECONDS", help="mean time from create to done (e.g. 3, 2.5s, 1m)"
    )
    parser.add_argument(
        "--typical-latency",
        action="store_true",
        default=None,
        help="each model's typical prediction time as its mean (flux-batch models lists them)",
    )
    parser.add_argument(
        "--create-rpm", type=int, metavar="N", help="create limit per minute per token (0: none)"
    )
    parser.add_argument(
        "--other-rpm", type=int, metavar="N", help="limit per minute for other calls (0: none)"
    )
    parser.add_argument(
        "--burst", type=int, metavar="N", help="requests allowed in a burst above the create rate"
    )
    parser.add_argument("--retention", metavar="SECONDS", help="how long outputs live (default 3600)")
    parser.add_argument("--token", help="accept only this bearer token (default: any non-empty one)")
    parser.add_argument(
        "--retry-after-header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send a Retry-After header with 429s (default on)",
    )
    parser.add_argument("--low-credit", action="store_true", default=None, help="6 creates a minute, burst 1")
    parser.add_argument("--seed", type=int, help="seed for faults, latencies, ids and random seeds")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a fault: KIND[:SCHEDULE][:key=value,...], e.g. ambiguous_create:0.05, "
        "html_5xx:every=20, unauthorized:from=100, slow:0.1:delay=3 (repeatable; see docs/simulator.md)",
    )
    parser.add_argument(
        "--no-list",
        dest="list_supported",
        action="store_false",
        default=None,
        help="answer 404 to list calls",
    )
    parser.add_argument("--files-base-url", metavar="URL", help="absolute base URL of output files")
    parser.add_argument(
        "--rate-limit-body",
        choices=("auto", "bare", "retry_after", "problem"),
        help="shape of 429 bodies (default auto: as seen in the wild)",
    )
    parser.add_argument(
        "--proxy-next",
        choices=("upstream", "proxy"),
        help="where proxy-style list pages' next points (default upstream: api.replicate.com)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate from a throwaway authority (output URLs become https:)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PATH",
        help="with --tls: write the authority's PEM here, for SSL_CERT_FILE or NODE_EXTRA_CA_CERTS",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.set_defaults(func=run)


_OVERRIDES = (
    "latency",
    "typical_latency",
    "create_rpm",
    "other_rpm",
    "burst",
    "retention",
    "token",
    "retry_after_header",
    "low_credit",
    "seed",
    "list_supported",
    "files_base_url",
    "rate_limit_body",
    "proxy_next",
)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`SimConfig` the flags describe: the profile (if any), then each flag given."""
    from flux_batch.simulator.config import SimConfig, config_from_mapping, load_profile, parse_fault

    base = load_profile(args.profile) if args.profile else SimConfig()
    changes = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name) is not None}
    if args.fault:
        changes["faults"] = (*base.faults, *(parse_fault(spec) for spec in args.fault))
    return config_from_mapping(changes, base)


def run(args: argparse.Namespace) -> int:
    from flux_batch.simulator import create_app
    from flux_batch.simulator.server import base_urls, bind, serve

    config = config_from_args(args)
    if args.ca_file and not args.tls:
        raise UsageError("--ca-file names where --tls writes its certificate authority; add --tls")
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    with tempfile.TemporaryDirectory(prefix="flux-batch-tls-") as scratch:
        tls = _tls(args, scratch) if args.tls else None
        urls = base_urls(args.host, sock.getsockname()[1], "https" if tls else "http")
        print(
            f"flux-batch simulator serving (Ctrl-C to stop)\n"
            f"  Replicate style: {urls['replicate']}\n"
            f"  proxy style:     {urls['proxy']}\n"
            f"  stats:           {urls['stats']}",
            flush=True,
        )
        if tls is not None:
            print(
                f"  CA certificate:  {tls[1]}\n"
                f"  trust it with SSL_CERT_FILE={tls[1]} (Python) or NODE_EXTRA_CA_CERTS={tls[1]} (Node)",
                flush=True,
            )
        serve(create_app(config), sock, log_level=args.log_level, tls=tls[0] if tls else None)
    return 0


def _tls(args: argparse.Namespace, scratch: str) -> tuple[Any, Path]:
    """The certificates, and where the authority's PEM was written (``--ca-file`` or the scratch folder)."""
    from flux_batch.simulator.tls import make_tls

    tls = make_tls(scratch, args.host)
    target = Path(args.ca_file) if args.ca_file else Path(scratch) / "ca.pem"
    try:
        return tls, tls.write_ca(target)
    except OSError as exc:
        raise UsageError(f"cannot write the CA certificate to {target}: {exc.strerror}") from exc
