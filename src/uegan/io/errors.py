"""The error every image reader and writer raises for a file it cannot handle."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from uegan.errors import UserError


class PhotoError(UserError):
    """A photo that cannot be read or written: the message names the file and the reason."""


def extra_module(name: str, path: Path, what: str, extra: str) -> ModuleType:
    """The optional package ``name`` that reads ``path``; a PhotoError naming the file and the
    extra to install (``pip install 'uegan[EXTRA]'``) when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise PhotoError(f"{path}: {what}; reading it needs the {extra} extra: "
                         f"pip install 'uegan[{extra}]'") from error
