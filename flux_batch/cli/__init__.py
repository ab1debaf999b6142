"""The ``flux-batch`` command: a thin layer over the library.

Each subcommand lives in a small module of this package exposing ``register(subparsers)``; its handler
takes the parsed arguments and returns an exit code. Errors from the library arrive as
:class:`flux_batch.errors.FluxBatchError` and leave as one line (or one line per issue) on stderr and the
error's exit code; a bad command line is one line too; a traceback only with ``--debug``. Output cut short
by its reader (``flux-batch plan ... | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from flux_batch import __version__
from flux_batch.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    FluxBatchError,
    ManifestError,
)

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "flux_batch.cli.manifest_cmds",
    "flux_batch.cli.models_cmd",
    "flux_batch.cli.simulate_cmd",
    "flux_batch.cli.report_cmd",
    "flux_batch.cli.refine_cmd",
    "flux_batch.cli.run_cmds",
    "flux_batch.cli.export_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line told in one line (not the whole usage) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse's --help, --version and errors
        return exit.code if isinstance(exit.code, int) else EXIT_INVALID
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    try:
        code: int = args.func(args)
        sys.stdout.flush()
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
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"flux-batch: internal error: {type(exc).__name__}: {exc} (a bug in flux-batch: please report "
            f"it with the output of `flux-batch --debug {args.command} ...`)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    # Python flushes stdout again at exit, which would raise BrokenPipeError once more; point the
    # descriptor at /dev/null so that flush succeeds (the recipe of the Python docs, "Note on SIGPIPE").
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (a test's captured stream)
        pass
