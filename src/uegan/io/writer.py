"""Encoding outputs: 8 bits, or 16 bits for PNG and TIFF, tagged sRGB, EXIF kept, alpha put back.

Every output embeds the same sRGB profile bytes (:data:`uegan.io.color.SRGB_PROFILE`), and no
encoder here writes a time stamp, so the same pixels always give the same file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from uegan.errors import UserError
from uegan.io.color import SRGB_PROFILE
from uegan.io.files import real_path
from uegan.io.heif import HEIF_EXTENSIONS
from uegan.io.png16 import write_png16
from uegan.io.quantize import to_8bit, to_16bit
from uegan.io.raw import RAW_EXTENSIONS

log = logging.getLogger(__name__)

DEFAULT_QUALITY = 95

# output format name -> (Pillow format, canonical extension, can hold 16 bits, can hold alpha)
OUTPUT_FORMATS: dict[str, tuple[str, str, bool, bool]] = {
    "png": ("PNG", ".png", True, True),
    "jpeg": ("JPEG", ".jpg", False, False),
    "tiff": ("TIFF", ".tif", True, True),
    "webp": ("WEBP", ".webp", False, True),
    "bmp": ("BMP", ".bmp", False, True),
}
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff", "mpo": "jpeg"}
# formats that are read but never written -> the output format written for them by default:
# TIFF for camera RAW (lossless; 16 bits with --bit-depth 16), JPEG for HEIC (lossy like HEIC,
# and opened everywhere)
RAW_OUTPUT_FORMAT = "tiff"
HEIF_OUTPUT_FORMAT = "jpeg"


def normalise_format(name: str) -> str:
    """A format name or extension (any case, with or without the dot) -> a key of OUTPUT_FORMATS."""
    key = name.lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
    if key not in OUTPUT_FORMATS:
        read_only = f".{key}" in RAW_EXTENSIONS | HEIF_EXTENSIONS or key in ("raw", "heic", "heif")
        hint = " (camera RAW and HEIC are read, never written)" if read_only else ""
        raise UserError(f"unknown image format {name!r}{hint}; use one of "
                        f"{', '.join(OUTPUT_FORMATS)}")
    return key


def default_output_format(path: Path) -> str | None:
    """The format an enhanced copy of ``path`` is written in when none is asked for: None where
    it is written in its own format (the suffix says it), TIFF for camera RAW, JPEG for HEIC/HEIF."""
    suffix = path.suffix.lower()
    if suffix in RAW_EXTENSIONS:
        return RAW_OUTPUT_FORMAT
    if suffix in HEIF_EXTENSIONS:
        return HEIF_OUTPUT_FORMAT
    return None


def _write16(path: Path, format: str, rgb: np.ndarray, alpha: np.ndarray | None,
             exif: bytes | None) -> None:
    pixels = to_16bit(rgb)
    if alpha is not None:
        pixels = np.concatenate([pixels, to_16bit(alpha)[..., None]], axis=-1)
    if format == "png":
        write_png16(path, pixels, icc=SRGB_PROFILE, exif=exif)
        return
    if exif:
        log.debug("%s: EXIF is not written to 16-bit TIFF", real_path(path))
    tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib",
                     extrasamples=("unassalpha",) if alpha is not None else None,
                     extratags=[(34675, "B", len(SRGB_PROFILE), SRGB_PROFILE, True)],
                     software=False, datetime=False)


def write_photo(path: str | Path, rgb: np.ndarray, *, format: str, alpha: np.ndarray | None = None,
                exif: bytes | None = None, quality: int = DEFAULT_QUALITY,
                bit_depth: int = 8) -> None:
    """Encode ``rgb`` (H x W x 3 uint8 or uint16) to ``path`` in ``format``, tagged sRGB.

    ``bit_depth`` 16 is honoured by PNG and TIFF; other formats are 8-bit. Alpha is written
    where the format holds it and dropped with a warning where it does not (JPEG).
    Writes ``path`` directly: callers wrap it in :func:`uegan.io.files.atomic_path` (messages
    then name the final file, not the temporary one).
    """
    path = Path(path)
    format = normalise_format(format)
    pil_format, _, holds_16, holds_alpha = OUTPUT_FORMATS[format]
    if bit_depth not in (8, 16):
        raise UserError(f"bit depth must be 8 or 16, not {bit_depth}")
    if bit_depth == 16 and not holds_16:
        raise UserError(f"{format.upper()} cannot hold 16 bits per channel; use --format png "
                        f"or tiff")
    if alpha is not None and not holds_alpha:
        log.warning("%s: %s has no alpha channel; the alpha channel is dropped", real_path(path),
                    format.upper())
        alpha = None
    if bit_depth == 16:
        _write16(path, format, rgb, alpha, exif)
        return
    image = Image.fromarray(np.ascontiguousarray(to_8bit(rgb)), "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(np.ascontiguousarray(to_8bit(alpha)), "L"))
    options: dict[str, Any] = {}
    if format != "bmp":
        options["icc_profile"] = SRGB_PROFILE
        if exif:
            options["exif"] = exif
    if format == "jpeg":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2, optimize=False)
    elif format == "webp":
        options.update(quality=quality, method=4)
    elif format == "tiff":
        options.update(compression="tiff_deflate")
    elif format == "png":
        options.update(compress_level=6)
    image.save(path, format=pil_format, **options)
