"""What ``enhance`` and ``evaluate`` check and tidy before their work starts.

A wrong ``--threads``, ``--device`` or output folder is a usage error (one line, exit 2) found
before a model is loaded or an image is read, so a mistake never costs a whole run. The
temporary files that a killed run left beside its outputs are removed at the next start.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from uegan.errors import UserError
from uegan.evaluation import folder_write_problem

log = logging.getLogger(__name__)

# The temporary files of uegan.io.files.atomic_path: tempfile.mkstemp(prefix=f".{name}.",
# suffix=".tmp") beside the output ``name``, with tempfile's 8 random characters in between.
# TODO(after merge): uegan.io.files should own this pattern, next to the code that makes it.
TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: expected 1 or more")


def select_device(name: str) -> str:
    """The device named by ``--device``, checked; ``auto``: this torchrun process's GPU, or cpu.

    TODO(after merge): uegan.runtime.select_device replaces this local check."""
    if name == "auto":
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
        return "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r}: unknown device; use cpu, cuda, cuda:N or auto"
                        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} GPU(s), cuda:0 to "
                            f"cuda:{count - 1}")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: not supported; use cpu, cuda, cuda:N or auto")
    return name


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder, or a missing one that can be created, that can be written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: name a folder (created if missing)")
    problem = folder_write_problem(out)
    if problem is not None:
        raise UserError(f"--out {out}: cannot write there: {problem}")


def stale_temporaries(outputs: Iterable[Path]) -> list[Path]:
    """Temporary files that a killed run of this tool left for one of ``outputs``.

    Only the names that :func:`uegan.io.files.atomic_path` makes for exactly these outputs count,
    so a user's files, and the work in progress of other shards (other outputs), are never
    touched."""
    names_by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        names_by_folder.setdefault(output.parent, set()).add(output.name)
    found = []
    for folder, names in names_by_folder.items():
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    match = TEMPORARY_NAME.fullmatch(entry.name)
                    if match and match["name"] in names and entry.is_file(follow_symlinks=False):
                        found.append(Path(entry.path))
        except OSError:  # no such folder yet (a first run), or unreadable: nothing to remove
            continue
    return sorted(found)


def remove_stale_temporaries(outputs: Iterable[Path]) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``outputs``, naming each in the log; the removed."""
    removed = []
    for path in stale_temporaries(outputs):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("cannot remove %s, a temporary file left by an interrupted run (%s)",
                        path, error.strerror or error)
            continue
        log.info("removed %s, a temporary file left by an interrupted run", path)
        removed.append(path)
    return removed
