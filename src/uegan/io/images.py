"""Finding and reading image files.

Shared by training, evaluation and enhancement: one definition of which files are images and
of how a file becomes an RGB array.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from uegan.errors import UserError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})


def is_image_path(path: Path) -> bool:
    """True for a file name with one of the supported extensions, in any letter case."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted; none for a missing folder."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p)) if root.is_dir() else []


def find_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted; a UserError if there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    found = list_images(root)
    if not found:
        raise UserError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return found


def images_by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    """Map file stem -> path; a UserError naming both files when two share a stem."""
    result: dict[str, Path] = {}
    for path in paths:
        if path.stem in result:
            raise UserError(f"two images share the name {path.stem!r}: {result[path.stem]} and {path}")
        result[path.stem] = path
    return result


def load_rgb8(path: str | Path) -> np.ndarray:
    """Read an image file as an H x W x 3 uint8 RGB array, EXIF orientation applied."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"{path}: cannot read image ({error})") from error
