"""Safe file writing: outputs appear complete or not at all, and nothing is overwritten by accident."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from uegan.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary file lives in the same folder (so the rename is atomic on POSIX). If the
    body raises (a full disk, an interrupt), the temporary file is removed and ``path`` keeps
    whatever it held before. ``overwrite=False`` refuses to replace an existing file, even one
    created while the body ran: the temporary file is then hard-linked into place, which fails
    if the name exists (on a file system without hard links: checked, then renamed).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists (pass --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temp_path = Path(temporary)
    try:
        yield temp_path
        with open(temp_path, "rb") as written:
            os.fsync(written.fileno())
        if overwrite:
            os.replace(temp_path, target)
        else:
            _move_into_free_name(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)


def _move_into_free_name(temporary: Path, target: Path) -> None:
    exists = UserError(f"{target} already exists (pass --overwrite to replace it)")
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise exists from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise exists from None
        os.replace(temporary, target)


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, overwrite: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
