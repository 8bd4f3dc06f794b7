"""The ``uegan`` command: one sub-command per module of this package.

Each sub-command lives in its own module ``uegan.cli.<name>`` that defines
``register(subparsers)``; the parser it adds sets ``func`` (called with the parsed arguments,
returning the exit code).

Exit codes, the same for every sub-command: 0 success, 1 some work failed (each failed file is
named on stderr, as is a file the system refused to read or write), 2 usage error (a bad option,
a missing or unusable input named on the command line), 130 interrupted by Ctrl-C (SIGINT),
143 stopped by SIGTERM. A user's mistake ends with one line on stderr, never a traceback;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

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
    "serve",
    "export",
    "audit",
    "study",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's code for a Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, the shell's code for SIGTERM

# What the user can do about an operating-system error, by errno.
_OS_ERROR_HINTS: dict[int, str] = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space or write somewhere else",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENOENT: "check the path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs
    (``finally`` blocks remove temporary files) and code that stops on Ctrl-C stops on it too."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interruption_name(interrupt: KeyboardInterrupt) -> str:
    """How to name the interruption to the user: ``SIGTERM`` or ``Ctrl-C``."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


def interruption_exit_code(interrupt: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM raises :class:`Terminated` in the main thread.

    The previous handler comes back afterwards (a command that handles SIGTERM itself, such as
    training, installs its own inside). Signals can only be handled in the main thread: from
    another thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: the file it concerns, the cause and the fix."""
    cause = error.strerror or str(error) or error.__class__.__name__
    names = [os.fsdecode(name) for name in (error.filename, error.filename2) if name is not None]
    hint = _OS_ERROR_HINTS.get(error.errno or 0)
    line = f"{' -> '.join(names)}: {cause}" if names else cause  # no name: none was given
    return line + (f" ({hint})" if hint else "")


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


def _discard_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush at exit does not
    fail again on the closed pipe."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.debug, args.quiet)
    prefix = f"uegan {args.command}"
    # The safety net: a user's mistake (UserError), a file the system refuses (OSError: missing,
    # a folder, no permission, disk full) and an interruption end with one line and an exit code.
    # Any other exception is a bug in this program and keeps its traceback: it is not caught here.
    try:
        with sigterm_as_interrupt():
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a reader that went away (`uegan variants | head -1`) shows here
            return code
    except BrokenPipeError:  # stdout's reader went away: nobody is left to tell; stop quietly
        _discard_stdout()
        return EXIT_FAILED
    except UserError as error:
        if args.debug:
            raise
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # PermissionError, IsADirectoryError, FileNotFoundError, ENOSPC, ...
        if args.debug:
            raise
        print(f"{prefix}: error: {os_error_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:  # Ctrl-C, and SIGTERM (Terminated)
        print(f"{prefix}: stopped by {interruption_name(interrupt)}", file=sys.stderr)
        return interruption_exit_code(interrupt)
