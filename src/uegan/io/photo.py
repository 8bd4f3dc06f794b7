"""Reading and writing real photos for enhancement.

:func:`read_photo` turns a PNG, JPEG, TIFF, WebP or BMP file into a :class:`Photo`: an
``H x W x 3`` sRGB array (``uint8``, or ``uint16`` for 16-bit PNG and TIFF, read at full
precision), with

- the EXIF orientation applied (and the kept EXIF block reset to orientation 1);
- an embedded ICC profile other than sRGB converted to sRGB (relative colorimetric; 8-bit
  images through LittleCMS (``PIL.ImageCms``), 16-bit images with a matrix/TRC profile in
  floating point, other 16-bit profiles through LittleCMS at 8-bit precision, with a warning);
- the alpha channel split off, untouched, and grayscale replicated to three channels;
- a pixel limit checked before anything is decoded (decompression bombs).

:func:`write_photo` encodes the result: 8 bits, or 16 bits for PNG and TIFF, tagged sRGB (an
embedded sRGB profile), EXIF kept, alpha put back.

Pillow has no 16-bit RGB mode, so 16-bit colour PNG is decoded and encoded here (zlib and
numpy) and 16-bit colour TIFF goes through ``tifffile``.
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
from PIL import Image, ImageCms, UnidentifiedImageError

from uegan.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 200_000_000  # 200 megapixels: over this a file is taken for a bomb
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
_PIL_TO_FORMAT = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff", "WEBP": "webp",
                  "BMP": "bmp"}

_EXIF_ORIENTATION = 0x0112
_PIL_LIMIT_LOCK = threading.Lock()


class PhotoError(UserError):
    """A photo that cannot be read or written: the message names the file and the reason."""


@dataclass
class Photo:
    """A decoded photo, oriented and in sRGB.

    rgb: H x W x 3, ``uint8`` or ``uint16``. alpha: H x W of the same dtype, or None.
    exif: the EXIF block to write back (orientation reset to 1), or None.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    format: str  # one of OUTPUT_FORMATS
    exif: bytes | None = None
    grayscale: bool = False
    converted_from: str | None = None  # description of the ICC profile converted to sRGB

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def normalise_format(name: str) -> str:
    key = name.lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
    if key not in OUTPUT_FORMATS:
        raise UserError(f"unknown image format {name!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return key


def srgb_profile_bytes() -> bytes:
    """An sRGB ICC profile (LittleCMS' built-in sRGB), embedded in every output."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ----------------------------------------------------------------------------------------------
# orientation


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


# TIFF IFD0 tags that describe the photo (kept when a TIFF's tags become an EXIF block)
_TIFF_EXIF_KEEP = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825}


def _exif_to_keep(image: Image.Image, pil_format: str) -> bytes | None:
    try:
        exif = image.getexif()
        if pil_format == "TIFF":  # IFD0 of a TIFF holds its layout too: keep the descriptive tags
            kept = Image.Exif()
            for tag in _TIFF_EXIF_KEEP & set(exif):
                kept[tag] = exif[tag]
            exif = kept
        if not len(exif):
            return None
        if _EXIF_ORIENTATION in exif:
            exif[_EXIF_ORIENTATION] = 1
        return exif.tobytes()
    except Exception as error:  # a broken EXIF block is no reason to drop the photo
        log.debug("ignoring unreadable EXIF data (%s)", error)
        return None


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


# ----------------------------------------------------------------------------------------------
# ICC profiles


def _profile_description(icc: bytes) -> str:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return (profile.profile.profile_description or "").strip() or "unnamed profile"
    except Exception:
        return "unreadable profile"


def is_srgb_profile(icc: bytes) -> bool:
    """True for a profile that describes sRGB (by its description, as colour-managed tools do)."""
    return "srgb" in _profile_description(icc).lower().replace(" ", "")


def _s15f16(data: bytes, offset: int, count: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack_from(f">{count}i", data, offset)]


def _icc_tags(icc: bytes) -> dict[str, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    tags = {}
    for index in range(count):
        signature, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * index)
        tags[signature.decode("latin-1")] = icc[offset:offset + size]
    return tags


def _trc(tag: bytes):
    """A tone curve (ICC 'curv' or 'para') as a function on float arrays in [0, 1]."""
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", tag, 8)
        if n == 0:
            return lambda v: v
        if n == 1:
            gamma = struct.unpack_from(">H", tag, 12)[0] / 256.0
            return lambda v: np.power(v, gamma)
        table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda v: np.interp(v, grid, table)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", tag, 8)
        arity = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[function]
        g, a, b, c, d, e, f = (_s15f16(tag, 12, arity) + [0.0] * 7)[:7]
        if function == 0:
            return lambda v: np.power(v, g)
        if function == 1:
            return lambda v: np.where(v >= -b / a, np.power(np.maximum(a * v + b, 0), g), 0.0)
        if function == 2:
            return lambda v: np.where(v >= -b / a, np.power(np.maximum(a * v + b, 0), g) + c, c)
        if function == 3:
            return lambda v: np.where(v >= d, np.power(np.maximum(a * v + b, 0), g), c * v)
        return lambda v: np.where(v >= d, np.power(np.maximum(a * v + b, 0), g) + e, c * v + f)
    raise ValueError(f"unsupported tone curve type {kind!r}")


# sRGB primaries adapted to D50 (the ICC connection space), as in LittleCMS' built-in sRGB
_SRGB_TO_XYZ_D50 = np.array([[0.436041, 0.385113, 0.143046],
                             [0.222485, 0.716905, 0.060610],
                             [0.013920, 0.097067, 0.713913]])


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _matrix_trc_to_srgb(values: np.ndarray, icc: bytes) -> np.ndarray | None:
    """Float conversion of H x W x C values in [0, 1] through a matrix/TRC (or gray TRC) profile.

    None when the profile is not of that simple kind (LUT-based profiles, CMYK ...).
    """
    try:
        tags = _icc_tags(icc)
        if any(name.startswith(("A2B", "B2A")) for name in tags):
            return None
        space = icc[16:20]
        if space == b"GRAY" and "kTRC" in tags and values.shape[-1] == 1:
            linear = _trc(tags["kTRC"])(values[..., 0].astype(np.float64))
            return _srgb_encode(np.repeat(linear[..., None], 3, axis=-1))
        if space != b"RGB " or values.shape[-1] != 3:
            return None
        matrix = np.array([_s15f16(tags[f"{c}XYZ"], 8, 3) for c in "rgb"]).T  # columns r, g, b
        curves = [_trc(tags[f"{c}TRC"]) for c in "rgb"]
    except (KeyError, ValueError, struct.error):
        return None
    to_srgb = np.linalg.solve(_SRGB_TO_XYZ_D50, matrix)
    out = np.empty(values.shape, dtype=np.float64)
    for start in range(0, values.shape[0], 256):  # in strips: bounded memory on large photos
        strip = values[start:start + 256].astype(np.float64)
        linear = np.stack([curves[k](strip[..., k]) for k in range(3)], axis=-1)
        out[start:start + 256] = _srgb_encode(linear @ to_srgb.T)
    return out


def _convert_to_srgb_8bit(image: Image.Image, icc: bytes) -> Image.Image:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return ImageCms.profileToProfile(image, source, target, outputMode="RGB",
                                     renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)


# ----------------------------------------------------------------------------------------------
# 16-bit PNG


def _png_chunks(data: bytes, path: Path):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise PhotoError(f"{path}: not a PNG file")
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8:position + 8 + length]
        if len(body) < length:
            raise PhotoError(f"{path}: truncated PNG (chunk {kind.decode('latin-1')} is cut short)")
        yield kind, body
        position += 12 + length
        if kind == b"IEND":
            return
    raise PhotoError(f"{path}: truncated PNG (no IEND chunk)")


def png_header(path: str | Path) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) of a PNG file, None if not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return width, height, depth, colour, interlace


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters: ``rows`` is H x (1 + row bytes), filter type first."""
    kinds = rows[:, 0]
    data = rows[:, 1:]
    height, width_bytes = data.shape
    if np.any(kinds > 4):
        raise ValueError("invalid PNG filter type")
    if np.all(kinds <= 2):  # None, Sub, Up: row by row, each row vectorised
        out = np.empty_like(data)
        prior = np.zeros(width_bytes, dtype=np.uint8)
        for y in range(height):
            row = data[y]
            if kinds[y] == 1:
                row = np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
            elif kinds[y] == 2:
                row = row + prior
            out[y] = row
            prior = out[y]
        return out
    # Average and Paeth depend on the reconstructed left neighbour: walk the anti-diagonals,
    # where every pixel's left, upper and upper-left neighbours are already known.
    width = width_bytes // bpp
    filt = data.reshape(height, width, bpp).astype(np.int16)
    recon = np.zeros((height + 1, width + 1, bpp), dtype=np.int16)
    for diagonal in range(height + width - 1):
        y = np.arange(max(0, diagonal - width + 1), min(height - 1, diagonal) + 1)
        x = diagonal - y
        a = recon[y + 1, x]
        b = recon[y, x + 1]
        c = recon[y, x]
        kind = kinds[y][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        predictor = np.select([kind == 1, kind == 2, kind == 3, kind == 4],
                              [a, b, (a + b) >> 1, paeth], 0)
        recon[y + 1, x + 1] = (filt[y, x] + predictor) & 255
    return recon[1:, 1:].reshape(height, width_bytes).astype(np.uint8)


def read_png16(path: str | Path) -> np.ndarray:
    """A non-interlaced 16-bit PNG as H x W x C ``uint16`` (C = 1, 2, 3 or 4)."""
    path = Path(path)
    data = path.read_bytes()
    header = None
    compressed = []
    for kind, body in _png_chunks(data, path):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            compressed.append(body)
    if header is None:
        raise PhotoError(f"{path}: PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(colour)
    if depth != 16 or channels is None or interlace:
        raise PhotoError(f"{path}: not a non-interlaced 16-bit PNG")
    bpp = 2 * channels
    try:
        raw = zlib.decompress(b"".join(compressed))
    except zlib.error as error:
        raise PhotoError(f"{path}: corrupt PNG data ({error})") from error
    expected = height * (1 + width * bpp)
    if len(raw) < expected:
        raise PhotoError(f"{path}: truncated PNG ({len(raw)} of {expected} bytes of pixel data)")
    rows = np.frombuffer(raw, dtype=np.uint8, count=expected).reshape(height, 1 + width * bpp)
    try:
        pixels = _unfilter(rows, bpp)
    except ValueError as error:
        raise PhotoError(f"{path}: corrupt PNG ({error})") from error
    return pixels.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png16(path: str | Path, array: np.ndarray, icc: bytes | None = None,
                exif: bytes | None = None, level: int = 6) -> None:
    """Write H x W x C ``uint16`` (C = 1..4) as a 16-bit PNG (Sub filter), with iCCP and eXIf."""
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    data = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(height, width * bpp)
    filtered = data.copy()
    filtered[:, bpp:] -= data[:, :-bpp]  # Sub filter, modulo 256
    rows = np.concatenate([np.ones((height, 1), dtype=np.uint8), filtered], axis=1)
    parts = [b"\x89PNG\r\n\x1a\n",
             _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))]
    if icc:
        parts.append(_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc)))
    if exif:
        parts.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    compressed = zlib.compress(rows.tobytes(), level)
    for start in range(0, len(compressed), 1 << 20):
        parts.append(_chunk(b"IDAT", compressed[start:start + (1 << 20)]))
    parts.append(_chunk(b"IEND", b""))
    with open(path, "wb") as handle:
        handle.write(b"".join(parts))


# ----------------------------------------------------------------------------------------------
# reading


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    """Open lazily (nothing decoded) and check the pixel limit."""
    try:
        size = path.stat().st_size
    except PermissionError as error:
        raise PhotoError(f"{path}: cannot read (permission denied)") from error
    except OSError as error:
        raise PhotoError(f"{path}: cannot read ({error.strerror or error})") from error
    if not path.is_file():
        raise PhotoError(f"{path}: not a file")
    if size == 0:
        raise PhotoError(f"{path}: empty file (0 bytes)")
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # the limit below replaces Pillow's
        try:
            image = Image.open(path)
        except UnidentifiedImageError as error:
            raise PhotoError(f"{path}: not an image, or an unsupported format") from error
        except PermissionError as error:
            raise PhotoError(f"{path}: cannot read (permission denied)") from error
        except (OSError, ValueError, SyntaxError, struct.error) as error:
            raise PhotoError(f"{path}: truncated or corrupt image (header: {error})") from error
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise PhotoError(f"{path}: {width} x {height} = {width * height:,} pixels is over the limit "
                         f"of {max_pixels:,} (a decompression bomb?); raise it with --max-pixels")
    if width == 0 or height == 0:
        image.close()
        raise PhotoError(f"{path}: image has no pixels ({width} x {height})")
    if image.format not in _PIL_TO_FORMAT:
        image.close()
        raise PhotoError(f"{path}: unsupported format {image.format} "
                         f"(supported: PNG, JPEG, TIFF, WebP, BMP)")
    return image


def _is_16bit(image: Image.Image, path: Path) -> bool:
    if image.format == "PNG":
        header = png_header(path)
        return header is not None and header[2] == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) == 16
    return image.mode.startswith("I;16")


def _read_16bit_pixels(image: Image.Image, path: Path) -> np.ndarray:
    """H x W x C uint16 of a 16-bit PNG or TIFF."""
    if image.format == "PNG":
        if png_header(path)[4]:
            raise PhotoError(f"{path}: interlaced 16-bit PNG is not supported; save it without "
                             f"interlacing")
        return read_png16(path)
    try:
        import tifffile
    except ImportError as error:  # pragma: no cover - tifffile is a dependency
        raise PhotoError(f"{path}: reading 16-bit TIFF needs the tifffile package") from error
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            array = page.asarray()
            axes = page.axes
    except Exception as error:
        raise PhotoError(f"{path}: cannot decode 16-bit TIFF ({error.__class__.__name__}: "
                         f"{error}); LZW or JPEG compressed TIFF needs the imagecodecs "
                         f"package") from error
    if array.dtype != np.uint16:
        raise PhotoError(f"{path}: unsupported TIFF sample format {array.dtype}")
    if axes.startswith("S"):  # planar configuration: samples first
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[..., None]
    return array


def _split_channels(pixels: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    channels = pixels.shape[-1]
    if channels == 1:
        return pixels, None
    if channels == 2:
        return pixels[..., :1], pixels[..., 1]
    if channels in (3, 4):
        return pixels[..., :3], pixels[..., 3] if channels == 4 else None
    if channels > 4:  # extra samples beyond alpha are dropped
        return pixels[..., :3], pixels[..., 3]
    raise PhotoError(f"{path}: unsupported channel count {channels}")


def _pil_to_channels(image: Image.Image, icc: bytes | None, path: Path
                     ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """8-bit pixels of a Pillow image as (colour H x W x 1|3, alpha, converted profile)."""
    mode = image.mode
    if mode == "P":
        mode_to = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode_to)
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("I", "F", "I;16", "I;16B", "I;16L", "I;16N"):
        raise PhotoError(f"{path}: unsupported pixel format ({image.mode})")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "RGBX", "YCbCr", "LAB"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    alpha = None
    if image.mode in ("LA", "RGBA"):
        alpha = np.asarray(image.getchannel("A")).copy()
        image = image.convert("L" if image.mode == "LA" else "RGB")
    converted = None
    if icc and not is_srgb_profile(icc):
        try:
            image = _convert_to_srgb_8bit(image, icc)
            converted = _profile_description(icc)
        except (ImageCms.PyCMSError, OSError, ValueError) as error:
            log.warning("%s: cannot apply its ICC profile (%s); taking the pixels as sRGB",
                        path, error)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    colour = np.asarray(image)
    if colour.ndim == 2:
        colour = colour[..., None]
    return colour, alpha, converted


def read_photo(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a photo file (see the module documentation); a :class:`PhotoError` on any problem."""
    path = Path(path)
    image = _open(path, max_pixels)
    try:
        pil_format = image.format
        icc = image.info.get("icc_profile") or None
        orientation = _orientation(image)
        exif = _exif_to_keep(image, pil_format)
        if getattr(image, "n_frames", 1) > 1:
            log.info("%s: %d frames; enhancing the first", path, image.n_frames)
        sixteen = _is_16bit(image, path)
        converted = None
        try:
            if sixteen:
                colour, alpha = _split_channels(_read_16bit_pixels(image, path), path)
                if icc and not is_srgb_profile(icc):
                    srgb = _matrix_trc_to_srgb(colour.astype(np.float64) / 65535.0, icc)
                    if srgb is None:
                        log.warning("%s: ICC profile %r is not a matrix/TRC profile: converting "
                                    "it at 8-bit precision", path, _profile_description(icc))
                        eight = np.round(colour / 257.0).astype(np.uint8)
                        eight = Image.fromarray(eight[..., 0] if eight.shape[-1] == 1 else eight)
                        srgb = np.asarray(_convert_to_srgb_8bit(eight, icc)) / 255.0
                    colour = np.floor(srgb * 65535.0 + 0.5).astype(np.uint16)
                    converted = _profile_description(icc)
            else:
                image.load()
                colour, alpha, converted = _pil_to_channels(image, icc, path)
        except PhotoError:
            raise
        except MemoryError as error:
            raise PhotoError(f"{path}: not enough memory to decode "
                             f"{image.size[0]} x {image.size[1]} pixels") from error
        except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError) as error:
            message = str(error) or error.__class__.__name__
            raise PhotoError(f"{path}: truncated or corrupt image ({message})") from error
    finally:
        image.close()
    grayscale = colour.shape[-1] == 1
    if grayscale:
        colour = np.repeat(colour, 3, axis=-1)
    colour = np.ascontiguousarray(apply_orientation(colour, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(apply_orientation(alpha, orientation)).astype(colour.dtype)
    return Photo(rgb=colour, alpha=alpha, bit_depth=16 if sixteen else 8,
                 format=_PIL_TO_FORMAT[pil_format], exif=exif, grayscale=grayscale,
                 converted_from=converted)


# ----------------------------------------------------------------------------------------------
# writing


def to_8bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_16bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return array
    return array.astype(np.uint16) * 257


def write_photo(path: str | Path, rgb: np.ndarray, *, format: str, alpha: np.ndarray | None = None,
                exif: bytes | None = None, quality: int = DEFAULT_QUALITY,
                bit_depth: int = 8) -> None:
    """Encode ``rgb`` (H x W x 3 uint8 or uint16) to ``path`` in ``format``, tagged sRGB.

    ``bit_depth`` 16 is honoured by PNG and TIFF; other formats are 8-bit. Alpha is written
    where the format holds it and dropped with a warning where it does not (JPEG).
    Writes ``path`` directly: callers wrap it in :func:`uegan.io.files.atomic_path`.
    """
    format = normalise_format(format)
    pil_format, _, holds_16, holds_alpha = OUTPUT_FORMATS[format]
    if bit_depth not in (8, 16):
        raise UserError(f"bit depth must be 8 or 16, not {bit_depth}")
    if bit_depth == 16 and not holds_16:
        raise UserError(f"{format.upper()} cannot hold 16 bits per channel; use --format png "
                        f"or tiff")
    if alpha is not None and not holds_alpha:
        log.warning("%s: %s has no alpha channel; the alpha channel is dropped", path,
                    format.upper())
        alpha = None
    icc = srgb_profile_bytes()
    if bit_depth == 16:
        pixels = to_16bit(rgb)
        if alpha is not None:
            pixels = np.concatenate([pixels, to_16bit(alpha)[..., None]], axis=-1)
        if format == "png":
            write_png16(path, pixels, icc=icc, exif=exif)
        else:
            import tifffile

            if exif:
                log.debug("%s: EXIF is not written to 16-bit TIFF", path)
            tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib",
                             extrasamples=("unassalpha",) if alpha is not None else None,
                             extratags=[(34675, "B", len(icc), icc, True)])
        return
    pixels = to_8bit(rgb)
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(np.ascontiguousarray(to_8bit(alpha)), "L"))
    options: dict = {}
    if format != "bmp":
        options["icc_profile"] = icc
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
