"""Safe file writing: outputs appear complete or not at all, and nothing is overwritten by accident.

A file written here gets the permissions any new file of the user gets (``0666`` less the
umask), not the ``0600`` of a temporary file, and messages about it name the file the user
asked for, never the temporary file beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from uegan.errors import UserError

log = logging.getLogger(__name__)

# the names tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp") makes in atomic_path: eight of
# tempfile's characters (a-z, 0-9, _) between; only these are ever taken for our temporary files
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def real_path(path: str | Path) -> Path:
    """The file a temporary path of :func:`atomic_path` stands for (other paths unchanged)."""
    path = Path(path)
    match = _TEMPORARY.match(path.name)
    return path.with_name(match.group("name")) if match else path


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _name_the_real_file(error: BaseException, temporary: Path, target: Path) -> None:
    """Make an error raised while writing ``temporary`` name ``target`` instead."""
    if isinstance(error, OSError):
        for attribute in ("filename", "filename2"):
            if getattr(error, attribute, None) in (str(temporary), temporary):
                setattr(error, attribute, str(target))
    if error.args and isinstance(error.args[0], str) and str(temporary) in error.args[0]:
        error.args = (error.args[0].replace(str(temporary), str(target)),) + error.args[1:]


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
        try:
            yield temp_path
            os.chmod(temp_path, 0o666 & ~current_umask())
            with open(temp_path, "rb") as written:
                os.fsync(written.fileno())
        except Exception as error:
            _name_the_real_file(error, temp_path, target)
            raise
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


def folder_write_problem(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (missing folders are created, so the nearest
    existing one counts; ``os.access``: the user's permissions), or None when it can."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


def stale_temporaries(outputs: Iterable[Path]) -> list[Path]:
    """Temporary files that a killed run of this tool left for one of ``outputs``.

    Only the names that :func:`atomic_path` makes for exactly these outputs count,
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
                    match = _TEMPORARY.match(entry.name)
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
