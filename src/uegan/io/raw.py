"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...) through rawpy (LibRaw).

rawpy is the optional ``raw`` extra (``pip install 'uegan[raw]'``); without it a RAW file is one
:class:`~uegan.io.errors.PhotoError` that names the file and that command. RAW files are
recognised by their extension (:data:`RAW_EXTENSIONS`): most of them are TIFF files inside, and
read as TIFF they would give the embedded preview or the undemosaiced sensor data.

Development settings, chosen so that a file always gives the same pixels and nothing depends on
what the photo shows (no automatic exposure):

- the camera's white balance as shot (LibRaw's daylight multipliers when the file has none);
- LibRaw's default demosaicing (AHD), highlights clipped (LibRaw's default);
- the file's black and white levels as they are: no automatic brightening (``no_auto_bright``)
  and no lowering of the white level to the brightest pixel found (``adjust_maximum_thr=0``), so
  a flat grey at a quarter of the white level comes out at a quarter, linear;
- the camera's colour matrix to linear sRGB (D65), 16 bits linear, then the sRGB curve
  (IEC 61966-2-1, :func:`uegan.io.color.srgb_encode`) applied here through a 65536-entry table;
- the orientation recorded in the file, applied by LibRaw.

The result is a 16-bit sRGB image; the EXIF block of a RAW file is not kept (LibRaw does not
hand it over). The budget is checked on the sizes LibRaw reads from the metadata, before the
sensor data is unpacked: the sensor (2 bytes a photosite) and LibRaw's working image (four
16-bit channels, 8 bytes a pixel).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np

from uegan.io.budget import ReadBudget
from uegan.io.color import srgb_encode
from uegan.io.errors import PhotoError, extra_module
from uegan.io.quantize import quantize

RAW_EXTENSIONS: frozenset[str] = frozenset({
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".rwl", ".pef", ".srw", ".x3f", ".3fr", ".fff", ".iiq", ".erf", ".kdc", ".dcr",
    ".mrw", ".mos", ".mef", ".raw"})
DESCRIPTION = "camera RAW (camera colour matrix, as-shot white balance)"
WORKING_BYTES_PER_PIXEL = 8  # LibRaw develops in four 16-bit channels
_TRANSPOSE = 4  # LibRaw's flip bit that swaps width and height


def is_raw_path(path: Path) -> bool:
    """True for a file name with a camera RAW extension, in any letter case."""
    return path.suffix.lower() in RAW_EXTENSIONS


def _rawpy(path: Path) -> Any:
    """The rawpy module; a PhotoError naming the file and the extra when it is not installed."""
    return extra_module("rawpy", path, "a camera RAW file", "raw")


def _errors(rawpy: Any) -> tuple[type[BaseException], ...]:
    return (rawpy.LibRawError, rawpy.NotSupportedError, ValueError, OSError)


def _failure(rawpy: Any, path: Path, error: BaseException) -> PhotoError:
    if isinstance(error, rawpy.LibRawFileUnsupportedError):
        return PhotoError(f"{path}: not a camera RAW file that LibRaw can read (unsupported "
                          f"camera or damaged file)")
    if isinstance(error, (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError)):
        return PhotoError(f"{path}: camera RAW file too large to develop ({error})")
    reason = error.args[0] if error.args else type(error).__name__
    if isinstance(reason, bytes):  # rawpy passes LibRaw's messages on as bytes
        reason = reason.decode("utf-8", "replace")
    return PhotoError(f"{path}: truncated or corrupt camera RAW file ({reason})")


def _opened(rawpy: Any, path: Path, data: bytes | None, budget: ReadBudget) -> Any:
    """A LibRaw handle with the metadata read (nothing unpacked) and the sizes checked; from
    ``data``, or else from the file, which LibRaw then reads only as far as it needs."""
    if data is None:
        try:  # LibRaw reports an unreadable file as an I/O error: name the cause first
            with open(path, "rb"):
                pass
        except OSError as error:
            raise PhotoError(f"{path}: cannot read ({error.strerror or error})") from error
    raw = rawpy.RawPy()
    try:
        if data is None:
            raw.open_file(str(path))
        else:
            raw.open_buffer(io.BytesIO(data))
        sizes = raw.sizes
        if sizes.width < 1 or sizes.height < 1:
            raise PhotoError(f"{path}: image has no pixels ({sizes.width} x {sizes.height})")
        budget.check_pixels(path, sizes.raw_width, sizes.raw_height, 2)
        budget.check_pixels(path, sizes.width, sizes.height, WORKING_BYTES_PER_PIXEL)
    except PhotoError:
        raw.close()
        raise
    except _errors(rawpy) as error:
        raw.close()
        raise _failure(rawpy, path, error) from error
    return raw


def raw_size(path: Path, data: bytes | None, budget: ReadBudget) -> tuple[int, int]:
    """(width, height) as shown (the file's orientation applied), from the metadata only."""
    rawpy = _rawpy(path)
    raw = _opened(rawpy, path, data, budget)
    try:
        sizes = raw.sizes
        swapped = bool(sizes.flip & _TRANSPOSE)
    finally:
        raw.close()
    return (sizes.height, sizes.width) if swapped else (sizes.width, sizes.height)


@functools.lru_cache(maxsize=1)
def _srgb_table() -> np.ndarray:
    """16-bit linear -> 16-bit sRGB-encoded, one entry per level."""
    return quantize(srgb_encode(np.arange(65536, dtype=np.float64) / 65535.0), np.uint16)


def read_raw(path: Path, data: bytes | None, budget: ReadBudget) -> np.ndarray:
    """The developed photo: H x W x 3 ``uint16`` sRGB, oriented (settings: module documentation)."""
    rawpy = _rawpy(path)
    raw = _opened(rawpy, path, data, budget)
    try:
        raw.unpack()
        linear = raw.postprocess(
            use_camera_wb=True, no_auto_bright=True, adjust_maximum_thr=0.0, output_bps=16,
            gamma=(1.0, 1.0), output_color=rawpy.ColorSpace.sRGB)
    except MemoryError as error:
        raise PhotoError(f"{path}: not enough memory to develop this camera RAW file") from error
    except _errors(rawpy) as error:
        raise _failure(rawpy, path, error) from error
    finally:
        raw.close()
    if linear.ndim != 3 or linear.shape[-1] != 3:
        raise PhotoError(f"{path}: camera RAW file developed to an unexpected shape {linear.shape}")
    return _srgb_table()[linear]
