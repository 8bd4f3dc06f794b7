"""The one image reader: every command (train, evaluate, enhance, prepare-fivek) reads here.

:func:`read_photo` turns a PNG, JPEG, TIFF, WebP or BMP file into a :class:`Photo`: an
``H x W x 3`` sRGB array (``uint8``, or ``uint16`` for 16-bit PNG and TIFF, read at full
precision), with

- the file's declared size checked against a :class:`~uegan.io.budget.ReadBudget` before any
  pixel is decoded, and compressed data never inflated beyond the declared size;
- the EXIF orientation applied (and the kept EXIF block reset to orientation 1);
- an embedded ICC profile whose *content* is not sRGB converted to sRGB
  (:mod:`uegan.io.icc`); CMYK converted to RGB (through its profile when it has one);
- 16-bit grayscale scaled (never clipped), MinIsWhite inverted, grayscale replicated to three
  channels, the alpha channel split off untouched.

:func:`load_rgb8` is the same reading, quantised to 8 bits (the form training and evaluation
use), so that a model sees at training time what it sees when enhancing.

Two more kinds of file are read here, each through an optional extra (without it, one error
naming the file and the ``pip install`` that adds it): camera RAW files, by extension, developed
by :mod:`uegan.io.raw` (16-bit sRGB), and HEIC/HEIF images, by content, decoded by
:mod:`uegan.io.heif` and then colour-managed like the others.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageCms, UnidentifiedImageError

from uegan.io.budget import DEFAULT_MAX_PIXELS, ReadBudget, inflate_bounded
from uegan.io.errors import PhotoError
from uegan.io.exif import TRANSPOSED, apply_orientation, exif_to_keep, orientation
from uegan.io.heif import heif_size, is_heif, read_heif
from uegan.io.color import prophoto_to_srgb
from uegan.io.icc import (describe, is_prophoto, is_srgb_profile, lcms_to_srgb, matrix_trc,
                          matrix_trc_to_srgb)
from uegan.io.png16 import png_header, read_png16
from uegan.io.raw import DESCRIPTION as RAW_DESCRIPTION, is_raw_path, raw_size, read_raw
from uegan.io.source import check_file, head, read_file
from uegan.io.quantize import quantize, to_8bit, to_16bit, to_unit

log = logging.getLogger(__name__)

PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff", "WEBP": "webp",
               "BMP": "bmp"}
# what a damaged file can make a decoder raise; each becomes one PhotoError naming the file
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                 struct.error, zlib.error, tifffile.TiffFileError, ImageCms.PyCMSError)
_PIL_LIMIT_LOCK = threading.Lock()
_TIFF_DEFLATE = (8, 32946)
_MINISWHITE, _SEPARATED = 0, 5


@dataclass
class Photo:
    """A decoded photo, oriented and in sRGB.

    rgb: H x W x 3, ``uint8`` or ``uint16``. alpha: H x W of the same dtype, or None.
    exif: the EXIF block to write back (orientation reset to 1), or None.
    profile: "untagged" (no ICC profile: the pixels are as stored), "srgb" (a profile whose
    content is sRGB), "converted" (converted to sRGB from ``converted_from``), or "ignored"
    (a profile that could not be applied, named in ``converted_from``; pixels as stored).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    format: str  # a key of uegan.io.writer.OUTPUT_FORMATS: the file's own; tiff (RAW), jpeg (HEIF)
    exif: bytes | None = None
    grayscale: bool = False
    converted_from: str | None = None
    profile: str = "untagged"
    icc: bytes | None = None  # the embedded ICC profile, as found in the file

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


@dataclass
class _Pixels:
    """Decoded samples before colour management: colour H x W x (1 gray, 3 RGB, 4 CMYK)."""

    colour: np.ndarray
    alpha: np.ndarray | None
    cmyk: bool = False


def open_image(path: Path, data: bytes | None, budget: ReadBudget) -> Image.Image:
    """Open lazily (nothing decoded) from ``data`` or else the file, and check the declared
    size against ``budget``."""
    if data is None:
        check_file(path, budget)
    elif not data:
        raise PhotoError(f"{path}: empty file (0 bytes)")
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # the budget replaces Pillow's limit
        try:
            image = Image.open(path if data is None else io.BytesIO(data))
        except UnidentifiedImageError as error:
            raise PhotoError(f"{path}: not an image, or an unsupported format") from error
        except PermissionError as error:
            raise PhotoError(f"{path}: cannot read (permission denied)") from error
        except DECODE_ERRORS as error:
            raise PhotoError(f"{path}: truncated or corrupt image (header: {error})") from error
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    try:
        width, height = image.size
        if image.format not in PIL_FORMATS:
            raise PhotoError(f"{path}: unsupported format {image.format} "
                             f"(supported: PNG, JPEG, TIFF, WebP, BMP, HEIC, camera RAW)")
        bytes_per_sample = 2 if _is_16bit(image, head(path, data)) else 1
        budget.check_pixels(path, width, height,
                            max(3, len(image.getbands())) * bytes_per_sample)
        if width < 1 or height < 1:
            raise PhotoError(f"{path}: image has no pixels ({width} x {height})")
    except BaseException:
        image.close()
        raise
    return image


def _is_16bit(image: Image.Image, first_bytes: bytes) -> bool:
    if image.format == "PNG":
        header = png_header(first_bytes)
        return header is not None and header[2] == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) == 16
    return image.mode.startswith("I;16")


def _tiff16(data: bytes, path: Path, budget: ReadBudget) -> _Pixels:
    """A 16-bit TIFF through tifffile; deflate data is checked against the declared size first."""
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        budget.check_pixels(path, page.imagewidth, page.imagelength,
                            2 * max(3, page.samplesperpixel))
        if page.compression in _TIFF_DEFLATE:
            segment = 2 * page.samplesperpixel * (
                page.tilewidth * page.tilelength * max(1, page.tiledepth) if page.is_tiled
                else page.imagewidth * min(page.rowsperstrip, page.imagelength))
            for offset, count in zip(page.dataoffsets, page.databytecounts):
                inflate_bounded([data[offset:offset + count]], segment, path, exact=False)
        try:
            array = page.asarray()
        except ValueError as error:
            raise PhotoError(f"{path}: cannot decode 16-bit TIFF ({error}); LZW or JPEG "
                             f"compressed TIFF needs the imagecodecs package") from error
        axes, photometric = page.axes, int(page.photometric)
    if array.dtype != np.uint16:
        raise PhotoError(f"{path}: unsupported TIFF sample format {array.dtype}")
    if "S" in axes and "Y" in axes and axes.index("S") < axes.index("Y"):  # planar
        array = np.moveaxis(array, axes.index("S"), -1)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise PhotoError(f"{path}: unsupported TIFF layout {axes}")
    if photometric == _MINISWHITE:
        array[..., :1] = 65535 - array[..., :1]
    if photometric == _SEPARATED:
        if array.shape[-1] < 4:
            raise PhotoError(f"{path}: a separated (CMYK) TIFF with {array.shape[-1]} inks")
        return _Pixels(array[..., :4], array[..., 4] if array.shape[-1] > 4 else None, cmyk=True)
    return _split(array, path)


def _split(pixels: np.ndarray, path: Path) -> _Pixels:
    """Colour and alpha of H x W x C samples (gray, gray + alpha, RGB, RGB + alpha + extras)."""
    channels = pixels.shape[-1]
    if channels == 1:
        return _Pixels(pixels, None)
    if channels == 2:
        return _Pixels(pixels[..., :1], pixels[..., 1])
    if channels >= 3:  # samples beyond alpha are dropped
        return _Pixels(pixels[..., :3], pixels[..., 3] if channels > 3 else None)
    raise PhotoError(f"{path}: unsupported channel count {channels}")


def _pil8(image: Image.Image, path: Path) -> _Pixels:
    """The 8-bit pixels of a Pillow image."""
    image.load()
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("I", "F") or mode.startswith("I;16"):
        raise PhotoError(f"{path}: unsupported pixel format ({mode})")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    samples = np.asarray(image)
    if samples.ndim == 2:
        samples = samples[..., None]
    if image.mode == "CMYK":
        return _Pixels(samples, None, cmyk=True)
    return _split(samples, path)


def _cmyk_to_rgb(pixels: _Pixels, icc: bytes | None, path: Path
                 ) -> tuple[np.ndarray, str, str | None]:
    if icc and icc[16:20] == b"CMYK":
        try:
            converted = np.asarray(lcms_to_srgb(Image.fromarray(to_8bit(pixels.colour), "CMYK"), icc))
            return (to_16bit(converted) if pixels.colour.dtype == np.uint16 else converted,
                    "converted", describe(icc))
        except (ImageCms.PyCMSError, OSError, ValueError) as error:
            log.warning("%s: cannot apply its CMYK profile (%s); converting without it", path, error)
    ink = to_unit(pixels.colour, np.float64)
    rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])  # no profile: the naive conversion
    return quantize(rgb, pixels.colour.dtype), "converted", "CMYK without a usable profile"


def _to_srgb(pixels: _Pixels, icc: bytes | None, path: Path
             ) -> tuple[np.ndarray, str, str | None]:
    """(colour in sRGB: H x W x 1 or 3, profile status, converted-from description)."""
    if pixels.cmyk:
        return _cmyk_to_rgb(pixels, icc, path)
    colour = pixels.colour
    if not icc:
        return colour, "untagged", None
    if is_srgb_profile(icc):
        return colour, "srgb", None
    name = describe(icc)
    gray = colour.shape[-1] == 1
    content = matrix_trc(icc)
    if content is not None and not gray and is_prophoto(content):  # the standards' conversion
        srgb = prophoto_to_srgb(to_unit(colour, np.float64))
        return quantize(srgb, colour.dtype), "converted", name
    if content is not None and content.gray == gray:
        srgb = matrix_trc_to_srgb(to_unit(colour, np.float64), content)
        return quantize(srgb, colour.dtype), "converted", name
    try:
        if colour.dtype == np.uint16:
            log.warning("%s: ICC profile %r is not a matrix/TRC profile: converting it at 8-bit "
                        "precision", path, name)
        eight = to_8bit(colour)
        converted = np.asarray(lcms_to_srgb(Image.fromarray(eight[..., 0] if gray else eight), icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
        log.warning("%s: cannot apply its ICC profile %r (%s); taking the pixels as sRGB",
                    path, name, error)
        return colour, "ignored", name
    return (to_16bit(converted) if colour.dtype == np.uint16 else converted), "converted", name


def read_photo(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, *,
               budget: ReadBudget | None = None, data: bytes | None = None) -> Photo:
    """Read a photo (see the module documentation); a :class:`PhotoError` on any problem.

    ``budget`` (default: ``max_pixels`` and the default byte limit) bounds what may be
    allocated; ``data`` gives the file's bytes when the caller has read them already.
    """
    path = Path(path)
    budget = budget if budget is not None else ReadBudget(max_pixels=max_pixels)
    if data is not None:
        budget.check_file_size(path, len(data))
    kind = _kind(path, data)
    if kind == "raw":
        if data is None:
            check_file(path, budget)
        return Photo(rgb=read_raw(path, data, budget), alpha=None, bit_depth=16, format="tiff",
                     converted_from=RAW_DESCRIPTION, profile="converted")
    if kind == "heif":
        return _heif_photo(path, data or read_file(path, budget), budget)
    image = open_image(path, data, budget)
    try:
        pil_format = image.format
        icc = image.info.get("icc_profile") or None
        turn = orientation(image)
        exif = exif_to_keep(image)
        if getattr(image, "n_frames", 1) > 1:
            log.info("%s: %d frames; reading the first", path, image.n_frames)
        sixteen = _is_16bit(image, head(path, data))
        if sixteen and pil_format == "PNG":
            pixels = _split(read_png16(data or read_file(path, budget), path, budget), path)
        elif sixteen and pil_format == "TIFF":
            pixels = _tiff16(data or read_file(path, budget), path, budget)
        else:
            pixels = _pil8(image, path)
        colour, status, converted = _to_srgb(pixels, icc, path)
    except PhotoError:
        raise
    except MemoryError as error:
        raise PhotoError(f"{path}: not enough memory to decode "
                         f"{image.size[0]} x {image.size[1]} pixels") from error
    except DECODE_ERRORS as error:
        message = str(error) or error.__class__.__name__
        raise PhotoError(f"{path}: truncated or corrupt image ({message})") from error
    finally:
        image.close()
    return _photo(pixels, colour, turn, 16 if sixteen else 8, PIL_FORMATS[pil_format], exif,
                  converted, status, icc)


def _kind(path: Path, data: bytes | None) -> str | None:
    """"raw" (by extension), "heif" (by content), or None for the files Pillow opens."""
    if is_raw_path(path):
        return "raw"
    try:
        return "heif" if is_heif(head(path, data)) else None
    except PhotoError:  # unreadable: open_image names the problem
        return None


def _heif_photo(path: Path, data: bytes, budget: ReadBudget) -> Photo:
    decoded = read_heif(path, data, budget)
    pixels = _split(decoded.samples, path)
    try:
        colour, status, converted = _to_srgb(pixels, decoded.icc, path)
    except DECODE_ERRORS as error:
        raise PhotoError(f"{path}: cannot convert its colours ({error})") from error
    return _photo(pixels, colour, 1, 16 if pixels.colour.dtype == np.uint16 else 8, "jpeg",
                  decoded.exif, converted, status, decoded.icc)


def _photo(pixels: _Pixels, colour: np.ndarray, turn: int, bit_depth: int, format: str,
           exif: bytes | None, converted: str | None, status: str, icc: bytes | None) -> Photo:
    """The :class:`Photo` of decoded, colour-managed samples: three channels, oriented."""
    grayscale = colour.shape[-1] == 1 and not pixels.cmyk
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    colour = np.ascontiguousarray(apply_orientation(colour, turn))
    alpha = pixels.alpha
    if alpha is not None:
        alpha = np.ascontiguousarray(apply_orientation(alpha, turn)).astype(colour.dtype)
    return Photo(rgb=colour, alpha=alpha, bit_depth=bit_depth, format=format, exif=exif,
                 grayscale=grayscale, converted_from=converted, profile=status, icc=icc)


def photo_from_image(image: Image.Image, name: str = "image") -> Photo:
    """A Pillow image already in memory, read as :func:`read_photo` reads a file: EXIF
    orientation applied, ICC profile converted to sRGB, grayscale and CMYK to RGB, alpha split
    off. Pillow holds 8-bit colour only, so the photo is 8-bit; ``name`` is used in messages."""
    path = Path(name)
    icc = image.info.get("icc_profile") or None
    pixels = _pil8(image, path)
    colour, status, converted = _to_srgb(pixels, icc, path)
    return _photo(pixels, colour, orientation(image), 8,
                  PIL_FORMATS.get(image.format or "PNG", "png"), exif_to_keep(image), converted,
                  status, icc)


def load_rgb8(path: str | Path, budget: ReadBudget | None = None) -> np.ndarray:
    """An image file as H x W x 3 ``uint8`` sRGB: :func:`read_photo`, quantised, alpha dropped."""
    return to_8bit(read_photo(path, budget=budget).rgb)


def probe_size(path: str | Path, budget: ReadBudget | None = None) -> tuple[int, int]:
    """(width, height) as shown (EXIF orientation applied), from the header only.

    The same checks as :func:`read_photo` before decoding: a PhotoError for a file that is not
    an image or is over the budget.
    """
    path = Path(path)
    budget = budget if budget is not None else ReadBudget()
    kind = _kind(path, None)
    if kind == "raw":
        check_file(path, budget)
        return raw_size(path, None, budget)
    if kind == "heif":
        return heif_size(path, read_file(path, budget), budget)
    with open_image(path, None, budget) as image:
        width, height = image.size
        turn = orientation(image)
    return (height, width) if turn in TRANSPOSED else (width, height)
