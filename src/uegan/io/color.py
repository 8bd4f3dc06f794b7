"""Colour curves and matrices: the sRGB curve, ProPhoto RGB (ROMM) to sRGB, the sRGB profile.

Every matrix is derived from the standards' chromaticities (IEC 61966-2-1 for sRGB, ISO 22028-2
for ROMM RGB, Bradford chromatic adaptation), in float64.

:data:`SRGB_PROFILE` is the ICC profile embedded in every output: LittleCMS' built-in sRGB
made once at import, with its creation date zeroed and its profile ID recomputed, so that the
same pixels always give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import ImageCms

ROMM_PRIMARIES_XY = ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001))
D50_XY = (0.3457, 0.3585)
SRGB_PRIMARIES_XY = ((0.6400, 0.3300), (0.3000, 0.6000), (0.1500, 0.0600))
D65_XY = (0.3127, 0.3290)
PROPHOTO_GAMMA = 1.8
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])


def xy_to_xyz(xy: Sequence[float]) -> np.ndarray:
    """Chromaticity (x, y) -> XYZ with Y = 1."""
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(primaries_xy: Sequence[Sequence[float]], white_xy: Sequence[float]
                      ) -> np.ndarray:
    """The 3x3 matrix taking linear RGB to XYZ for these primaries, white (1,1,1) -> white (Y=1)."""
    columns = np.stack([xy_to_xyz(p) for p in primaries_xy], axis=1)
    scale = np.linalg.solve(columns, xy_to_xyz(white_xy))
    return columns * scale


def bradford_matrix(source_white_xy: Sequence[float], target_white_xy: Sequence[float]
                    ) -> np.ndarray:
    """Bradford chromatic adaptation of XYZ from one white to another."""
    source = BRADFORD @ xy_to_xyz(source_white_xy)
    target = BRADFORD @ xy_to_xyz(target_white_xy)
    return np.linalg.inv(BRADFORD) @ np.diag(target / source) @ BRADFORD


PROPHOTO_TO_XYZ_D50 = rgb_to_xyz_matrix(ROMM_PRIMARIES_XY, D50_XY)
SRGB_TO_XYZ_D65 = rgb_to_xyz_matrix(SRGB_PRIMARIES_XY, D65_XY)
D50_TO_D65 = bradford_matrix(D50_XY, D65_XY)
PROPHOTO_TO_LINEAR_SRGB = np.linalg.inv(SRGB_TO_XYZ_D65) @ D50_TO_D65 @ PROPHOTO_TO_XYZ_D50
# sRGB's colorants adapted to D50, the ICC connection space (what an sRGB profile's rXYZ,
# gXYZ and bXYZ tags hold)
SRGB_TO_XYZ_D50 = np.linalg.inv(D50_TO_D65) @ SRGB_TO_XYZ_D65


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on values in [0, 1] (clipped first)."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(linear, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`srgb_encode` on values in [0, 1] (clipped first)."""
    encoded = np.clip(encoded, 0.0, 1.0)
    return np.where(encoded <= 0.04045, encoded / 12.92, np.power((encoded + 0.055) / 1.055, 2.4))


def prophoto_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """ProPhoto RGB values in [0, 1] (..., 3) -> sRGB values in [0, 1], float64.

    Gamma 1.8 decode, ROMM primaries (D50) to XYZ, Bradford to D65, to linear sRGB, clip
    channel-wise (as a relative-colorimetric matrix/shaper transform does), sRGB curve.
    """
    values = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.power(values, PROPHOTO_GAMMA) @ PROPHOTO_TO_LINEAR_SRGB.T
    return srgb_encode(linear)


def prophoto_to_srgb_strips(values: np.ndarray, scale: float, rows: int = 256) -> np.ndarray:
    """Convert a large H x W x 3 integer array in strips of rows (float64 math, float32 result)."""
    out = np.empty(values.shape, dtype=np.float32)
    for top in range(0, values.shape[0], rows):
        out[top:top + rows] = prophoto_to_srgb(values[top:top + rows] / scale)
    return out


def _reproducible(profile: bytes) -> bytes:
    """An ICC profile with its creation date zeroed and its MD5 profile ID recomputed (ICC.1
    7.2.18: the ID is the MD5 of the profile with flags, rendering intent and ID zeroed)."""
    data = bytearray(profile)
    data[24:36] = bytes(12)  # dateTimeNumber
    if any(data[84:100]):
        hashed = bytearray(data)
        hashed[44:48] = bytes(4)
        hashed[64:68] = bytes(4)
        hashed[84:100] = bytes(16)
        data[84:100] = hashlib.md5(bytes(hashed)).digest()
    return bytes(data)


SRGB_PROFILE: bytes = _reproducible(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def srgb_profile_bytes() -> bytes:
    """The sRGB ICC profile embedded in every output (the same bytes every time)."""
    return SRGB_PROFILE
