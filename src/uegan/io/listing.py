"""Finding image files: one definition of which files are images, shared by every command.

Listing walks the folder itself: symbolic links to folders are followed once (a link that
leads back into a folder already being listed is skipped with a warning naming it), and
folders given in ``exclude`` (an output folder inside an input folder) are never entered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from uegan.errors import UserError
from uegan.io.heif import HEIF_EXTENSIONS
from uegan.io.raw import RAW_EXTENSIONS

log = logging.getLogger(__name__)

# HEIC and camera RAW files are listed whether or not their extra is installed: without it the
# reader refuses each one with the install command, as it refuses any file it cannot read
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}) | HEIF_EXTENSIONS | RAW_EXTENSIONS
LOOKED_FOR = (".png, .jpg, .jpeg, .tif, .tiff, .webp, .bmp, .heic, .heif, .hif and camera RAW "
              "(.dng, .cr2, .cr3, .nef, .arw, ...)")


def is_image_path(path: Path) -> bool:
    """True for a file name with one of the supported extensions, in any letter case."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


Problem = Callable[[Path, str], None]  # (path, reason): what a listing could not enter


def _warn(path: Path, reason: str) -> None:
    log.warning("%s: %s; skipped", path, reason)


def list_images(folder: str | Path, exclude: Iterable[Path] = (), on_problem: Problem = _warn
                ) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted; none for a missing folder.

    Nothing inside a folder of ``exclude`` is listed. A symbolic link back into a folder being
    listed is skipped with a warning (what it leads to is listed already). Unreadable folders and
    links that cannot be followed are skipped and passed to ``on_problem`` (default: a warning in
    the log; a command that counts failures passes its own).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    excluded = {identity for identity in map(_identity, map(Path, exclude)) if identity}
    found: list[Path] = []
    ancestors: list[tuple[int, int]] = []

    def walk(directory: Path) -> None:
        identity = _identity(directory)
        if identity is None or identity in excluded:
            return
        if identity in ancestors:
            # not a failure: everything behind the link is listed already
            log.warning("%s: a symbolic link back into a folder being listed (a loop); skipped",
                        directory)
            return
        ancestors.append(identity)
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as error:
            on_problem(directory, f"cannot list folder ({error.strerror or error})")
            entries = []
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as error:  # a link pointing at itself, too many levels
                on_problem(path, f"cannot follow ({error.strerror or error})")
                continue
            if is_dir:
                walk(path)
            elif is_file and is_image_path(path):
                found.append(path)
            elif entry.is_symlink() and is_image_path(path):
                on_problem(path, "cannot read: a symbolic link to a missing file, or a loop")
        ancestors.pop()

    walk(root)
    return sorted(found)


def find_images(folder: str | Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted; a UserError if there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    found = list_images(root, exclude)
    if not found:
        raise UserError(f"{root}: no images found (looked for {LOOKED_FOR})")
    return found


def images_by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    """Map file stem -> path; a UserError naming both files when two share a stem."""
    result: dict[str, Path] = {}
    for path in paths:
        if path.stem in result:
            raise UserError(f"two images share the name {path.stem!r}: {result[path.stem]} and {path}")
        result[path.stem] = path
    return result
