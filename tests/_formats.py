"""Small DNG and HEIC files made by the tests.

A DNG here is a Bayer mosaic (RGGB) in a TIFF with the DNG tags LibRaw needs to develop it (DNG
1.4 specification, chapter 6), written by tifffile; a HEIC is written by pillow-heif (imported
only when one is made, so that the tests of a missing extra run without it).

The camera's colour is described by ``camera``: the 3 x 3 matrix from linear sRGB (D65) to the
camera's RGB. Each row sums to 1, so a neutral grey reaches every camera channel equally: the
as-shot white balance is then 1, 1, 1 (AsShotNeutral), and the tests know what the developed
photo must hold without running any raw converter: the linear sRGB values they mosaicked.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import tifffile

# IEC 61966-2-1: CIE XYZ (D65) -> linear sRGB
XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                               [-0.9692660, 1.8760108, 0.0415560],
                               [0.0556434, -0.2040259, 1.0572252]])
# a camera that mixes its channels: linear sRGB -> camera RGB, rows summing to 1
MIXING_CAMERA = np.array([[0.80, 0.15, 0.05],
                          [0.10, 0.80, 0.10],
                          [0.05, 0.15, 0.80]])
BLACK, WHITE = 256, 4095  # 12-bit sensor with a black level
_DENOMINATOR = 1_000_000


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 -> H x W RGGB Bayer samples: R at (even, even), B at (odd, odd), G elsewhere."""
    out = rgb[..., 1].copy()
    out[0::2, 0::2] = rgb[0::2, 0::2, 0]
    out[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return out


def _rationals(values: np.ndarray) -> list[int]:
    return [int(part) for v in np.ravel(values)
            for part in (round(float(v) * _DENOMINATOR), _DENOMINATOR)]


def dng_bytes(linear_srgb: np.ndarray, camera: np.ndarray = MIXING_CAMERA,
              orientation: int = 1) -> bytes:
    """An uncompressed DNG whose sensor saw ``linear_srgb`` (H x W x 3 in [0, 1], H and W even
    and at least 22: LibRaw refuses smaller sensors) through ``camera``; ``orientation`` is the
    TIFF/EXIF orientation tag (1 upright, 6: turn 90 degrees clockwise to show)."""
    signal = np.clip(linear_srgb @ camera.T, 0.0, 1.0)
    samples = np.floor(BLACK + mosaic(signal) * (WHITE - BLACK) + 0.5).astype(np.uint16)
    extratags = [
        (254, "I", 1, 0, True),                          # NewSubfileType: the main image
        (274, "H", 1, orientation, True),                # Orientation
        (33421, "H", 2, (2, 2), True),                   # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),             # CFAPattern: R G / G B
        (50706, "B", 4, (1, 4, 0, 0), True),             # DNGVersion 1.4
        (50707, "B", 4, (1, 1, 0, 0), True),             # DNGBackwardVersion
        (50708, "s", 0, "uegan test camera", True),      # UniqueCameraModel
        (50714, "H", 1, BLACK, True),                    # BlackLevel
        (50717, "H", 1, WHITE, True),                    # WhiteLevel
        (50721, "2i", 9, _rationals(camera @ XYZ_TO_LINEAR_SRGB), True),  # ColorMatrix1: XYZ -> camera
        (50728, "2I", 3, _rationals(np.ones(3)), True),  # AsShotNeutral
        (50778, "H", 1, 21, True),                       # CalibrationIlluminant1: D65
    ]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, samples, photometric=32803, extratags=extratags, software=False,
                     datetime=False, metadata=None)
    return buffer.getvalue()


def declare_size(dng: bytes, width: int, height: int) -> bytes:
    """The same file with ImageWidth and ImageLength of its first IFD replaced: a header that
    promises far more pixels than the file holds."""
    data = bytearray(dng)
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        tag, kind, _ = struct.unpack_from("<HHI", data, entry)
        if tag in (256, 257):
            assert kind == 4  # LONG
            struct.pack_into("<I", data, entry + 8, width if tag == 256 else height)
    return bytes(data)


def heic_bytes(pixels: np.ndarray, *, exif_orientation: int | None = None,
               icc: bytes | None = None) -> bytes:
    """A lossless HEIC (quality -1, 4:4:4) of H x W x 3 ``uint8`` (8-bit) or ``uint16`` (stored
    at 10 bits) ``pixels``. ``exif_orientation`` is written as HEIF's own transformation
    (``irot``/``imir``, so a decoder shows the pixels turned) and left in the EXIF block too,
    as iPhones do."""
    import pillow_heif
    from PIL import Image

    height, width = pixels.shape[:2]
    mode = "RGB;16" if pixels.dtype == np.uint16 else "RGB"
    heif = pillow_heif.from_bytes(mode, (width, height), np.ascontiguousarray(pixels).tobytes())
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        heif.info["exif"] = exif.tobytes()
    if icc is not None:
        heif.info["icc_profile"] = icc
    buffer = io.BytesIO()
    heif.save(buffer, quality=-1, chroma=444)
    return buffer.getvalue()
