"""What the commands check and tidy before their work starts, and the options they share.

A wrong ``--threads``, ``--device`` or output folder is a usage error (one line, exit 2) found
before a model is loaded or an image is read, so a mistake never costs a whole run. The
temporary files that a killed run left beside its outputs are removed at the next start.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from uegan import runtime
from uegan.errors import UserError
from uegan.io.files import folder_write_problem
from uegan.runtime import OptionError

log = logging.getLogger(__name__)

def check_threads(threads: int | None) -> None:
    """``--threads``, checked by :func:`uegan.runtime.check_threads`; the message names the flag."""
    try:
        runtime.check_threads(threads)
    except OptionError as error:
        raise UserError(f"--threads {threads}: {error}") from None


def select_device(name: str) -> torch.device:
    """``--device``, resolved by :func:`uegan.runtime.select_device` (``auto``: this torchrun
    process's GPU, then MPS, then the CPU); the message names the flag."""
    try:
        return runtime.select_device(name, int(os.environ.get("LOCAL_RANK", "0")))
    except OptionError as error:
        raise UserError(f"--device {name}: {error}") from None


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder, or a missing one that can be created, that can be written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: name a folder (created if missing)")
    problem = folder_write_problem(out)
    if problem is not None:
        raise UserError(f"--out {out}: cannot write there: {problem}")


CHECKPOINT_HELP = ("generator checkpoint: a published UEGAN .pth, a training checkpoint of this "
                   "project or an exported generator (detected)")


def add_checkpoint_option(parser: argparse.ArgumentParser, *, required: bool = True,
                          help: str = CHECKPOINT_HELP, legacy_positional: bool = False) -> None:
    """``--checkpoint`` / ``-c``, given the same way to every command. ``legacy_positional``:
    also accept the checkpoint as the first positional argument, as earlier versions did (not
    shown in the help; a warning asks for ``-c``)."""
    parser.add_argument("--checkpoint", "-c", required=required and not legacy_positional,
                        metavar="CHECKPOINT", help=help)
    if legacy_positional:
        parser.add_argument("legacy_checkpoint", nargs="?", help=argparse.SUPPRESS)


def checkpoint_from(args: argparse.Namespace, required: bool = True) -> str | None:
    """The checkpoint of ``-c`` or of the legacy positional argument (with a warning)."""
    given, legacy = args.checkpoint, getattr(args, "legacy_checkpoint", None)
    if given is not None and legacy is not None:
        raise UserError(f"two checkpoints given ({legacy} and -c {given}): give one, with -c")
    if legacy is not None:
        log.warning("give the checkpoint with -c/--checkpoint (-c %s): the positional form will "
                    "go in a later version", legacy)
        return legacy
    if given is None and required:
        raise UserError("give the generator checkpoint with -c/--checkpoint FILE")
    return given
