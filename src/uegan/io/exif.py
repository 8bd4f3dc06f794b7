"""EXIF orientation (the one table of the eight orientations) and the EXIF block kept in outputs."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
TRANSPOSED = frozenset({5, 6, 7, 8})  # orientations that swap width and height
# TIFF IFD0 tags that describe the photo (kept when a TIFF's tags become an EXIF block)
_TIFF_EXIF_KEEP = frozenset({0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769,
                             0x8825})


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H x W (x C) array, as Pillow's exif_transpose does."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened image (1 when absent or unreadable)."""
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block is no reason to drop the photo
        return 1
    return value if 1 <= value <= 8 else 1


def exif_to_keep(image: Image.Image) -> bytes | None:
    """The EXIF block to write back into an output (orientation reset to 1), or None."""
    try:
        exif = image.getexif()
        if image.format == "TIFF":  # IFD0 of a TIFF holds its layout too: keep the descriptive tags
            kept = Image.Exif()
            for tag in _TIFF_EXIF_KEEP & set(exif):
                kept[tag] = exif[tag]
            exif = kept
        return _upright_block(exif)
    except Exception as error:  # a broken EXIF block is no reason to drop the photo
        log.debug("ignoring unreadable EXIF data (%s)", error)
        return None


def exif_block_to_keep(block: bytes | None) -> bytes | None:
    """An EXIF block found outside Pillow (HEIF), to write back with its orientation reset to 1;
    None when there is none or it cannot be read."""
    if not block:
        return None
    try:
        exif = Image.Exif()
        exif.load(block)
        return _upright_block(exif)
    except Exception as error:  # a broken EXIF block is no reason to drop the photo
        log.debug("ignoring unreadable EXIF data (%s)", error)
        return None


def _upright_block(exif: Image.Exif) -> bytes | None:
    """``exif`` as a block to write back, its orientation reset to 1 (the pixels are upright);
    None when it holds no tag."""
    if not len(exif):
        return None
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return exif.tobytes()
