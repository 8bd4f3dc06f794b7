"""HEIC / HEIF photos (iPhones, many Android and Canon/Fujifilm cameras) through pillow-heif.

pillow-heif is the optional ``heif`` extra (``pip install 'uegan[heif]'``); without it a HEIF
file is one :class:`~uegan.io.errors.PhotoError` that names the file and that command. A HEIF
file is recognised by its content (an ISO media ``ftyp`` box with an HEVC image brand), whatever
its extension; :data:`HEIF_EXTENSIONS` are the names that folder listings take for photos.

- **Budget**: pillow-heif reads the container's metadata and decodes only when the pixels are
  asked for; the declared size is checked against the budget in between.
- **Orientation**: HEIF records it as transformations (``irot``, ``imir``) that libheif applies
  while decoding, so the pixels come out upright. The EXIF orientation tag that such files carry
  too (iPhones write both) describes the same turn and is not applied a second time; it is reset
  to 1 in the EXIF block kept.
- **Depth**: 8-bit images are read as 8-bit; 10- and 12-bit images as 16-bit, scaled
  ``v * 65535 / (2**bits - 1)`` (pillow-heif shifts them left, which leaves white short of 65535).
- **Colour**: the embedded ICC profile is handed to the reader, which converts to sRGB as for
  any other file; an image without one (``nclx`` colour information only) is taken as sRGB.
- Only the primary image is read (depth maps, thumbnails and bursts are left out).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uegan.io.budget import ReadBudget
from uegan.io.errors import PhotoError, extra_module
from uegan.io.exif import exif_block_to_keep

HEIF_EXTENSIONS: frozenset[str] = frozenset({".heic", ".heif", ".hif"})
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_STRUCTURAL_BRANDS = frozenset({b"mif1", b"mif2", b"msf1"})  # also used by AVIF: look further
# what pillow-heif documents its decoding may raise
_DECODE_ERRORS = (ValueError, EOFError, SyntaxError, RuntimeError, OSError, KeyError, IndexError,
                  struct.error)


def is_heif(head: bytes) -> bool:
    """True when a file's first bytes are an ``ftyp`` box naming an HEVC (HEIC) image brand."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    major = head[8:12]
    if major in _HEVC_BRANDS:
        return True
    if major not in _STRUCTURAL_BRANDS:
        return False
    box = min(struct.unpack(">I", head[:4])[0], len(head))
    compatible = {head[i:i + 4] for i in range(16, box - 3, 4)}
    return bool(compatible & _HEVC_BRANDS)


@dataclass(frozen=True)
class HeifPixels:
    """The decoded primary image, upright: H x W x C samples (1 gray, 2 gray + alpha, 3 RGB,
    4 RGBA; ``uint8`` or ``uint16``), its ICC profile and its EXIF block (orientation 1)."""

    samples: np.ndarray
    icc: bytes | None
    exif: bytes | None


def _pillow_heif(path: Path) -> Any:
    """The pillow_heif module; a PhotoError naming the file and the extra when it is missing."""
    return extra_module("pillow_heif", path, "a HEIC/HEIF image", "heif")


def _opened(path: Path, data: bytes, budget: ReadBudget) -> Any:
    """The primary image with its metadata read (nothing decoded) and its size checked."""
    pillow_heif = _pillow_heif(path)
    try:
        container = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        image = container[container.primary_index]
        width, height = image.size
        mode = image.mode
    except _DECODE_ERRORS as error:
        raise PhotoError(f"{path}: truncated or corrupt HEIF image "
                         f"({str(error) or type(error).__name__})") from error
    if width < 1 or height < 1:
        raise PhotoError(f"{path}: image has no pixels ({width} x {height})")
    channels = max(3, len(mode.split(";")[0]))
    budget.check_pixels(path, width, height, channels * (2 if mode.endswith(";16") else 1))
    return image


def heif_size(path: Path, data: bytes, budget: ReadBudget) -> tuple[int, int]:
    """(width, height) as shown, from the metadata only."""
    return tuple(_opened(path, data, budget).size)


def read_heif(path: Path, data: bytes, budget: ReadBudget) -> HeifPixels:
    """The primary image of a HEIF file, decoded (see the module documentation)."""
    image = _opened(path, data, budget)
    try:
        samples = np.asarray(image)
        bits = int(image.info.get("bit_depth", 8))
        icc = image.info.get("icc_profile") or None
        exif = exif_block_to_keep(image.info.get("exif"))
    except MemoryError as error:
        raise PhotoError(f"{path}: not enough memory to decode this HEIF image") from error
    except _DECODE_ERRORS as error:
        raise PhotoError(f"{path}: truncated or corrupt HEIF image "
                         f"({str(error) or type(error).__name__})") from error
    if samples.ndim == 2:
        samples = samples[..., None]
    if samples.dtype == np.uint16 and 8 < bits < 16:
        stored = samples >> (16 - bits)  # pillow-heif's 16-bit form is the value shifted left
        scaled = (stored.astype(np.uint32) * 65535 + (2 ** bits - 1) // 2) // (2 ** bits - 1)
        samples = scaled.astype(np.uint16)
    return HeifPixels(np.ascontiguousarray(samples), icc if isinstance(icc, bytes) else None, exif)
