"""ICC profiles judged by what they describe, and conversion of pixels to sRGB.

A profile's description is a name anyone can write ("sRGB linear", "Adobe RGB" on a ProPhoto
profile): it is used in messages only. What a profile *is* comes from its content: for a
matrix/TRC profile (the usual RGB and gray display profiles) its colorants and tone curves are
compared with sRGB's (or ProPhoto's); any other profile is run through LittleCMS
(``PIL.ImageCms``) on a set of test colours and compared with the identity.

Conversion to sRGB (relative colorimetric): matrix/TRC profiles in float64 (full precision for
16-bit images), other profiles through LittleCMS at 8-bit precision.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

from uegan.io.color import PROPHOTO_GAMMA, PROPHOTO_TO_XYZ_D50, SRGB_TO_XYZ_D50, srgb_decode, srgb_encode

Curve = Callable[[np.ndarray], np.ndarray]

COLORANT_TOLERANCE = 2e-3  # profiles store colorants as s15Fixed16 and round the white point
CURVE_TOLERANCE = 1.0 / 255  # the largest difference of two tone curves still taken as equal
_STRIP_ROWS = 256


def describe(icc: bytes) -> str:
    """The profile's description text, for messages."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return (ImageCms.getProfileDescription(profile) or "").strip() or "an unnamed ICC profile"
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return "an unreadable ICC profile"


def _s15f16(data: bytes, offset: int, count: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack_from(f">{count}i", data, offset)]


def _tags(icc: bytes) -> dict[str, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    if count > 1000:
        raise ValueError("implausible ICC tag count")
    tags = {}
    for index in range(count):
        signature, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * index)
        tags[signature.decode("latin-1")] = icc[offset:offset + size]
    return tags


def tone_curve(tag: bytes) -> Curve:
    """An ICC 'curv' or 'para' tone curve as a function on float arrays in [0, 1]."""
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
        if a == 0:
            raise ValueError("degenerate parametric curve")
        if function == 1:
            return lambda v: np.where(v >= -b / a, np.power(np.maximum(a * v + b, 0), g), 0.0)
        if function == 2:
            return lambda v: np.where(v >= -b / a, np.power(np.maximum(a * v + b, 0), g) + c, c)
        if function == 3:
            return lambda v: np.where(v >= d, np.power(np.maximum(a * v + b, 0), g), c * v)
        return lambda v: np.where(v >= d, np.power(np.maximum(a * v + b, 0), g) + e, c * v + f)
    raise ValueError(f"unsupported tone curve type {kind!r}")


@dataclass(frozen=True)
class MatrixTRC:
    """A matrix/TRC profile: RGB (3 curves, colorants as the columns of a 3x3 matrix, D50) or
    gray (one curve, no matrix)."""

    curves: tuple[Curve, ...]
    matrix: np.ndarray | None  # None for a gray profile

    @property
    def gray(self) -> bool:
        return self.matrix is None


def matrix_trc(icc: bytes) -> MatrixTRC | None:
    """The matrix/TRC content of a profile; None for any other kind (LUT-based, CMYK, broken)."""
    try:
        tags = _tags(icc)
        if any(name.startswith(("A2B", "B2A")) for name in tags):
            return None
        space = icc[16:20]
        if space == b"GRAY":
            return MatrixTRC((tone_curve(tags["kTRC"]),), None)
        if space != b"RGB ":
            return None
        matrix = np.array([_s15f16(tags[f"{c}XYZ"], 8, 3) for c in "rgb"]).T
        curves = tuple(tone_curve(tags[f"{c}TRC"]) for c in "rgb")
    except (KeyError, ValueError, IndexError, struct.error):
        return None
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-6:
        return None
    return MatrixTRC(curves, matrix)


_GRID = np.linspace(0.0, 1.0, 256)


def _curves_match(content: MatrixTRC, reference: Curve) -> bool:
    with np.errstate(all="ignore"):
        expected = reference(_GRID)
        return all(np.nanmax(np.abs(curve(_GRID) - expected)) <= CURVE_TOLERANCE
                   for curve in content.curves)


def _matches(content: MatrixTRC, matrix: np.ndarray, curve: Curve) -> bool:
    if content.gray:
        return _curves_match(content, curve)
    return (np.abs(content.matrix - matrix).max() <= COLORANT_TOLERANCE
            and _curves_match(content, curve))


def _lcms_is_identity(icc: bytes) -> bool:
    """True when LittleCMS maps test colours through the profile to sRGB unchanged (±1 level)."""
    levels = np.array([0, 16, 48, 96, 128, 160, 208, 240, 255], dtype=np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(27, 27, 3)
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if ImageCms.getProfileInfo(source) is None or icc[16:20] != b"RGB ":
            return False
        converted = ImageCms.profileToProfile(
            Image.fromarray(cube), source, ImageCms.createProfile("sRGB"), outputMode="RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return int(np.abs(np.asarray(converted, dtype=np.int16) - cube).max()) <= 1


def is_srgb_profile(icc: bytes) -> bool:
    """True for a profile whose content is sRGB (gray: the sRGB curve), whatever its name."""
    content = matrix_trc(icc)
    if content is not None:
        return _matches(content, SRGB_TO_XYZ_D50, srgb_decode)
    return _lcms_is_identity(icc)


def is_prophoto(content: MatrixTRC) -> bool:
    """True for matrix/TRC content with ROMM colorants and a gamma 1.8 curve."""
    return not content.gray and _matches(content, PROPHOTO_TO_XYZ_D50,
                                         lambda v: np.power(v, PROPHOTO_GAMMA))


def is_prophoto_profile(icc: bytes) -> bool:
    """True for a profile whose content is ProPhoto RGB (ROMM), whatever its name."""
    content = matrix_trc(icc)
    return content is not None and is_prophoto(content)


def classify_icc(icc: bytes | None) -> str | None:
    """"srgb", "prophoto", another profile's description, or None for no profile."""
    if not icc:
        return None
    if is_srgb_profile(icc):
        return "srgb"
    if is_prophoto_profile(icc):
        return "prophoto"
    return describe(icc)


def matrix_trc_to_srgb(values: np.ndarray, content: MatrixTRC) -> np.ndarray:
    """H x W x C values in [0, 1] (C = 1 for gray, 3 for RGB) -> H x W x 3 sRGB, float64."""
    height, width = values.shape[:2]
    out = np.empty((height, width, 3), dtype=np.float64)
    to_srgb = None if content.gray else np.linalg.solve(SRGB_TO_XYZ_D50, content.matrix)
    for top in range(0, height, _STRIP_ROWS):  # in strips: bounded memory on large photos
        strip = values[top:top + _STRIP_ROWS].astype(np.float64)
        with np.errstate(all="ignore"):
            if to_srgb is None:
                linear = np.repeat(content.curves[0](strip[..., 0])[..., None], 3, axis=-1)
            else:
                linear = np.stack([content.curves[k](strip[..., k]) for k in range(3)], axis=-1)
                linear = linear @ to_srgb.T
        out[top:top + _STRIP_ROWS] = srgb_encode(np.nan_to_num(linear))
    return out


def lcms_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """An 8-bit Pillow image (L, RGB or CMYK) converted through LittleCMS to 8-bit sRGB."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                     outputMode="RGB",
                                     renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
