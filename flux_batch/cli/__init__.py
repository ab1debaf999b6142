"""The ``flux-batch`` command: a thin layer over the library.

Each subcommand lives in a small module of this package exposing ``register(subparsers)``; its handler
takes the parsed arguments and returns an exit code. Errors from the library arrive as
:class:`flux_batch.errors.FluxBatchError` and leave as one line (or one line per issue) on stderr and the
error's exit code; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from flux_batch import __version__
from flux_batch.errors import EXIT_INTERRUPTED, FluxBatchError, ManifestError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "flux_batch.cli.manifest_cmds",
    "flux_batch.cli.simulate_cmd",
    "flux_batch.cli.report_cmd",
    "flux_batch.cli.run_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flux-batch",
        description="Declarative batch pipelines for FLUX image generation over the Replicate API.",
    )
    parser.add_argument("--version", action="version", version=f"flux-batch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
        return code
    except ManifestError as err:
        if args.debug:
            traceback.print_exc()
        print(err.render_all(), file=sys.stderr)
        return err.exit_code
    except FluxBatchError as err:
        if args.debug:
            traceback.print_exc()
        print(f"flux-batch: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("flux-batch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
