"""Camera RAW and HEIC through the one reader (``uegan.io.raw``, ``uegan.io.heif``).

The files are made here (``_formats.py``): DNGs whose sensor data the test mosaicked from known
linear sRGB values, HEICs written losslessly by pillow-heif. The expected pixels are the sRGB
curve written out below, or LittleCMS (Pillow's ImageCms) for an ICC conversion, never the
reader's own helpers. A test that needs an extra is skipped, with the reason, only where that
extra is not installed; the ``test`` extra installs both (``test_suite_rules.py`` fails without
them). The missing-extra messages are tested with the package hidden, whether installed or not.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from uegan.errors import UserError
from uegan.io.budget import ReadBudget
from uegan.io.errors import PhotoError
from uegan.io.listing import list_images
from uegan.io.reader import probe_size, read_photo
from uegan.io.writer import default_output_format, normalise_format
from uegan.training.data import scan_images
from _formats import declare_size, dng_bytes, heic_bytes
from _icc import gamma_curve, matrix_shaper_profile

needs_raw = pytest.mark.skipif(importlib.util.find_spec("rawpy") is None,
                               reason="the raw extra is not installed: pip install -e '.[raw]'")
needs_heif = pytest.mark.skipif(importlib.util.find_spec("pillow_heif") is None,
                                reason="the heif extra is not installed: pip install -e '.[heif]'")

GREY = (0.2, 0.2, 0.2)
COLOUR = (0.5, 0.25, 0.1)
# Developed RAW against the sRGB curve of the mosaicked values: the sensor data is quantised to
# 12 bits (half a step is 1.3e-4 linear, at most 2.2e-4 after the sRGB curve above 0.1 linear),
# LibRaw works in float32 and writes 16-bit linear (1.5e-5); measured 7e-5. 1e-3 is a quarter of
# an 8-bit level, while a wrong curve (BT.709), auto-brightening or a skipped camera matrix are
# off by 0.03 to 0.3.
RAW_TOLERANCE = 1e-3
MARGIN = 4  # demosaicing mixes photosites up to two pixels across the edge between the halves


def two_halves(height: int = 32, width: int = 64) -> np.ndarray:
    """Linear sRGB: a grey left half and a coloured right half."""
    linear = np.empty((height, width, 3))
    linear[:, :width // 2] = GREY
    linear[:, width // 2:] = COLOUR
    return linear


def srgb_curve(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1, written out."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def interior(image: np.ndarray) -> np.ndarray:
    """Every pixel at least MARGIN away from the border and from the middle column."""
    width = image.shape[1]
    keep = np.zeros(width, bool)
    keep[MARGIN:width // 2 - MARGIN] = keep[width // 2 + MARGIN:width - MARGIN] = True
    return image[MARGIN:-MARGIN][:, keep]


# --- camera RAW -----------------------------------------------------------------------------------


@needs_raw
def test_dng_is_developed_to_the_srgb_values_its_sensor_saw(tmp_path):
    path = tmp_path / "two-halves.DNG"
    path.write_bytes(dng_bytes(two_halves()))
    photo = read_photo(path)
    assert photo.rgb.dtype == np.uint16 and photo.bit_depth == 16 and photo.rgb.shape == (32, 64, 3)
    assert photo.format == "tiff" and photo.alpha is None
    expected = srgb_curve(two_halves())
    error = np.abs(interior(photo.rgb / 65535.0) - interior(expected))
    assert error.max() <= RAW_TOLERANCE
    assert probe_size(path) == (64, 32)
    assert np.array_equal(read_photo(path, data=path.read_bytes()).rgb, photo.rgb)  # from memory


@needs_raw
@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
def test_dng_orientation_is_applied_once(tmp_path, orientation, turn):
    path = tmp_path / "turned.dng"
    path.write_bytes(dng_bytes(two_halves(), orientation=orientation))
    photo = read_photo(path)
    expected = np.rot90(srgb_curve(two_halves()), turn)  # turn: quarter turns anticlockwise
    assert photo.rgb.shape == expected.shape
    assert probe_size(path) == (expected.shape[1], expected.shape[0])
    corners = [(MARGIN, MARGIN), (-MARGIN - 1, -MARGIN - 1)]  # one in each half
    assert np.abs(expected[corners[0]] - expected[corners[1]]).max() > 0.1
    for corner in corners:
        assert np.abs(photo.rgb[corner] / 65535.0 - expected[corner]).max() <= RAW_TOLERANCE


@needs_raw
def test_a_raw_header_over_the_budget_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.dng"
    path.write_bytes(declare_size(dng_bytes(two_halves()), 60000, 60000))  # a few KB of data
    for read in (read_photo, probe_size):
        with pytest.raises(PhotoError, match="60000 x 60000 = 3,600,000,000 pixels is over"):
            read(path)
    small = tmp_path / "small.dng"
    small.write_bytes(dng_bytes(two_halves()))
    with pytest.raises(PhotoError, match=r"64 x 32 = 2,048 pixels is over the limit of 2,000"):
        read_photo(small, budget=ReadBudget(max_pixels=2000))
    with pytest.raises(PhotoError, match="over the limit of 10,000 bytes"):
        read_photo(small, budget=ReadBudget(max_bytes=10_000))  # 8 bytes a pixel while developing


@needs_raw
def test_a_damaged_raw_file_is_one_error_naming_it(tmp_path):
    path = tmp_path / "damaged.nef"
    path.write_bytes(b"II*\0" + bytes(200))
    with pytest.raises(PhotoError) as raised:
        read_photo(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


# --- HEIC -----------------------------------------------------------------------------------------


@needs_heif
def test_heic_orientation_is_applied_once_and_reset_in_the_exif(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = (200, 60, 30)
    stored[:, 16:] = (40, 120, 220)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic_bytes(stored, exif_orientation=6))
    photo = read_photo(path)
    expected = np.rot90(stored, -1)  # orientation 6: turn 90 degrees clockwise to show
    assert photo.rgb.shape == expected.shape == (32, 16, 3)
    assert probe_size(path) == (16, 32)
    # lossless HEVC still goes through 8-bit YCbCr: one level either way
    assert np.abs(photo.rgb.astype(int) - expected).max() <= 1
    assert photo.format == "jpeg" and photo.bit_depth == 8 and photo.profile == "untagged"
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x0112] == 1


@needs_heif
def test_heic_icc_profile_is_converted_to_srgb(tmp_path):
    adobe_like = np.array([[0.6097559, 0.2052401, 0.1492240], [0.3111242, 0.6256560, 0.0632197],
                           [0.0194811, 0.0608902, 0.7448387]])
    icc = matrix_shaper_profile("a wide-gamut test profile", adobe_like, gamma_curve(2.2))
    stored = np.full((16, 16, 3), (180, 90, 40), np.uint8)
    path = tmp_path / "wide.heif"
    path.write_bytes(heic_bytes(stored, icc=icc))
    photo = read_photo(path)
    reference = ImageCms.profileToProfile(
        Image.fromarray(stored), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"), outputMode="RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    assert photo.profile == "converted" and photo.icc == icc
    # one level from the lossless YCbCr round trip, one between float64 and LittleCMS at 8 bits
    assert np.abs(photo.rgb.astype(int) - np.asarray(reference, dtype=int)).max() <= 2
    assert np.abs(photo.rgb.astype(int) - stored).max() >= 10  # the conversion did something


@needs_heif
def test_10bit_heic_is_read_as_16bit_with_white_at_full_scale(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint16)
    stored[:, :16] = 65535
    stored[:, 16:] = (40000, 20000, 9000)
    path = tmp_path / "ten.heic"
    path.write_bytes(heic_bytes(stored))  # pillow-heif stores 16-bit input at 10 bits
    photo = read_photo(path)
    assert photo.rgb.dtype == np.uint16 and photo.bit_depth == 16
    assert (photo.rgb[:, :16] == 65535).all()  # pillow-heif's own shift would give 65472
    ten_bit = np.round(stored / 65535 * 1023) * 65535 / 1023
    assert np.abs(photo.rgb - ten_bit).max() <= 65535 / 1023 + 1  # one 10-bit level


@needs_heif
def test_a_heic_over_the_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    import pillow_heif.heif

    path = tmp_path / "big.heic"
    path.write_bytes(heic_bytes(np.zeros((32, 48, 3), np.uint8)))

    def decode(self):
        raise AssertionError("decoded before the budget was checked")

    monkeypatch.setattr(pillow_heif.heif.BaseImage, "load", decode)
    for read in (read_photo, lambda p, budget: probe_size(p, budget)):
        with pytest.raises(PhotoError, match="48 x 32 = 1,536 pixels is over the limit of 1,000"):
            read(path, budget=ReadBudget(max_pixels=1000))


@needs_heif
def test_heic_is_recognised_by_content_and_damage_is_one_error(tmp_path):
    renamed = tmp_path / "shared-as.jpg"
    renamed.write_bytes(heic_bytes(np.full((16, 16, 3), 128, np.uint8)))
    assert read_photo(renamed).format == "jpeg" and read_photo(renamed).rgb.shape == (16, 16, 3)
    damaged = tmp_path / "damaged.heic"
    damaged.write_bytes(renamed.read_bytes()[:200])
    with pytest.raises(PhotoError) as raised:
        read_photo(damaged)
    assert str(damaged) in str(raised.value) and "\n" not in str(raised.value)


# --- without the extras ----------------------------------------------------------------------------

HEIF_HEADER = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64)  # a HEIC's first box, nothing more


@pytest.mark.parametrize("name, data, module, extra", [
    ("photo.CR2", b"II*\0" + bytes(64), "rawpy", "raw"),
    ("photo.dng", b"II*\0" + bytes(64), "rawpy", "raw"),
    ("IMG_1.HEIC", HEIF_HEADER, "pillow_heif", "heif"),
])
def test_a_missing_extra_is_one_line_naming_the_file_and_the_install(tmp_path, monkeypatch, name,
                                                                      data, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    path = tmp_path / name
    path.write_bytes(data)
    for read in (read_photo, probe_size):
        with pytest.raises(PhotoError) as raised:
            read(path)
        message = str(raised.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert f"pip install 'uegan[{extra}]'" in message


def test_raw_and_heic_are_listed_and_training_refuses_them_without_the_extra(tmp_path, monkeypatch,
                                                                             caplog):
    monkeypatch.setitem(sys.modules, "rawpy", None)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.NEF").write_bytes(b"II*\0" + bytes(64))
    (tmp_path / "c.heic").write_bytes(HEIF_HEADER)
    (tmp_path / "notes.txt").write_text("not a photo")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.NEF", "c.heic"]
    with pytest.raises(UserError) as raised:  # listed, then refused like any unreadable file
        scan_images(tmp_path, "low-quality")
    assert "uegan[raw]" in str(raised.value) and "uegan[heif]" in str(raised.value)
    assert "2 of 3 files" in str(raised.value)
    kept = scan_images(tmp_path, "low-quality", skip_bad=True)
    assert [info.path.name for info in kept] == ["a.png"]
    assert "b.NEF" in caplog.text and "c.heic" in caplog.text


def test_raw_and_heic_are_read_but_never_written():
    assert default_output_format(Path("x.ARW")) == "tiff"
    assert default_output_format(Path("x.heic")) == "jpeg"
    assert default_output_format(Path("x.png")) is None
    for name in ("dng", ".CR2", "heic"):
        with pytest.raises(UserError, match="read, never written"):
            normalise_format(name)
