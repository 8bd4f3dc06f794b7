"""A file's bytes, checked first: the checks every reader makes before it decodes anything.

A path that is not a file, an empty file, a file that cannot be read and a file over the
budget's byte limit each give one :class:`~uegan.io.errors.PhotoError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from uegan.io.budget import ReadBudget
from uegan.io.errors import PhotoError


def check_file(path: Path, budget: ReadBudget) -> None:
    """A PhotoError naming the problem unless ``path`` is a non-empty file within the budget."""
    try:
        size = path.stat().st_size
    except PermissionError as error:
        raise PhotoError(f"{path}: cannot read (permission denied)") from error
    except OSError as error:
        raise PhotoError(f"{path}: cannot read ({error.strerror or error})") from error
    if not path.is_file():
        raise PhotoError(f"{path}: not a file")
    if size == 0:
        raise PhotoError(f"{path}: empty file (0 bytes)")
    budget.check_file_size(path, size)


def read_file(path: Path, budget: ReadBudget) -> bytes:
    """The bytes of an image file, checked first; a PhotoError naming the problem."""
    check_file(path, budget)
    try:
        return path.read_bytes()
    except PermissionError as error:
        raise PhotoError(f"{path}: cannot read (permission denied)") from error
    except OSError as error:
        raise PhotoError(f"{path}: cannot read ({error.strerror or error})") from error


def head(path: Path, data: bytes | None, size: int = 64) -> bytes:
    """The first ``size`` bytes of the file (its header), from ``data`` when given."""
    if data is not None:
        return data[:size]
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise PhotoError(f"{path}: cannot read ({error.strerror or error})") from error
