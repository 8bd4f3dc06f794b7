"""Damaged files: random truncations and byte flips of valid PNG (8 and 16-bit), JPEG, TIFF
(8 and 16-bit), WebP, DNG and HEIC files made here, with a fixed random seed. Every case must end
in an image or in one of the project's errors (UserError and its subclasses), never another
exception. The DNG and HEIC cases are skipped, with the reason, only where their extra is missing.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from uegan.errors import UserError
from uegan.io.photo import read_photo
from uegan.io.png16 import encode_png16
from uegan.io.reader import probe_size
from _formats import dng_bytes, heic_bytes

# Pillow warns about the damage it skips over (tags beyond the file, corrupt EXIF): expected here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASES_PER_FILE = 60
EXTRA_FILES = {"camera.dng": "raw", "photo.heic": "heif"}  # made only where their extra is installed
SHAPES = {"camera.dng": (24, 32)}  # LibRaw refuses sensors under 22 photosites a side


def _pillow(array: np.ndarray, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format, **options)
    return buffer.getvalue()


def _tifffile(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def valid_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb8 = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (24, 20, 3), dtype=np.uint16)
    gray16 = rng.integers(0, 65536, (24, 20), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    extras = {}
    if importlib.util.find_spec("rawpy") is not None:
        extras["camera.dng"] = dng_bytes(rng.uniform(0, 1, (24, 32, 3)))
    if importlib.util.find_spec("pillow_heif") is not None:
        extras["photo.heic"] = heic_bytes(rgb8, exif_orientation=6)
    return extras | {
        "png8.png": _pillow(rgb8, "PNG", exif=exif),
        "png16.png": encode_png16(np.concatenate([rgb16, rgb16[..., :1]], axis=-1), exif=exif.tobytes()),
        "gray16.png": _pillow(gray16, "PNG"),
        "photo.jpg": _pillow(rgb8, "JPEG", quality=90, exif=exif),
        "tiff8.tif": _pillow(rgb8, "TIFF", compression="tiff_deflate"),
        "tiff16.tif": _tifffile(rgb16, photometric="rgb", compression="zlib"),
        "raw16.tif": _tifffile(gray16, photometric="minisblack"),
        "photo.webp": _pillow(rgb8, "WEBP", quality=80),
    }


def damaged(data: bytes, rng: np.random.Generator) -> bytes:
    """A truncation, or one to eight random byte changes (or both)."""
    kind = rng.integers(0, 3)
    out = bytearray(data)
    if kind in (0, 2):
        out = out[:int(rng.integers(1, len(out)))]
    if kind in (1, 2):
        for _ in range(int(rng.integers(1, 9))):
            out[int(rng.integers(0, len(out)))] = int(rng.integers(0, 256))
    return bytes(out)


@pytest.mark.parametrize("name", sorted(set(valid_files()) | set(EXTRA_FILES)))
def test_damaged_files_end_in_an_image_or_a_user_error(tmp_path, name):
    files = valid_files()
    if name not in files:
        pytest.skip(f"the {EXTRA_FILES[name]} extra is not installed: "
                    f"pip install -e '.[{EXTRA_FILES[name]}]'")
    original = files[name]
    (tmp_path / name).write_bytes(original)
    height, width = SHAPES.get(name, (24, 20))
    assert read_photo(tmp_path / name).rgb.shape[:2] in ((height, width), (width, height))
    rng = np.random.default_rng(list(name.encode()))
    outcomes = {"image": 0, "error": 0}
    for case in range(CASES_PER_FILE):
        path = tmp_path / f"{case}-{name}"
        path.write_bytes(damaged(original, rng))
        for read in (read_photo, probe_size):
            try:
                read(path)
                outcomes["image"] += read is read_photo
            except UserError as error:
                assert str(path) in str(error)
                outcomes["error"] += read is read_photo
    assert outcomes["error"] > 0 and sum(outcomes.values()) == CASES_PER_FILE
