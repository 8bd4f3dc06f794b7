"""The ``uegan`` command: one sub-command per module of this package.

Each sub-command lives in its own module ``uegan.cli.<name>`` that defines
``register(subparsers)``; the parser it adds sets ``func`` (called with the parsed arguments,
returning the exit code). Exit codes: 0 success, 1 some work failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from uegan import __version__
from uegan.errors import UserError

# Sub-command modules, in the order `uegan --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "variants",
    "train",
    "evaluate",
    "report",
    "prepare_fivek",
    "enhance",
    "export",
    "audit",
    "study",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uegan",
        description=(
            "Unsupervised photo enhancement with UEGAN: train on two unpaired photo collections, "
            "enhance photos, and measure the results."
        ),
    )
    parser.add_argument("--version", action="version", version=f"uegan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"uegan.cli.{name}").register(subparsers)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.debug, args.quiet)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        if args.debug:
            raise
        print(f"uegan {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"uegan {args.command}: interrupted", file=sys.stderr)
        return 130
