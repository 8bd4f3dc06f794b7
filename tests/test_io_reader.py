"""The one image reader: its budget against hostile files, the colour cases it handles once for
every command, and the reading done by training, evaluation and FiveK preparation through it.

Hostile files are made here (a few KB or MB, never committed). Memory bounds are checked in a
child process under an address-space limit, where an unbounded allocation would fail.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from uegan.apps import fivek
from uegan.errors import UserError
from uegan.io.budget import ReadBudget
from uegan.io.errors import PhotoError
from uegan.io.images import load_rgb8
from uegan.io.photo import read_photo
from uegan.io.quantize import quantize, to_8bit
from uegan.training.data import scan_images
from _icc import matrix_shaper_profile

MEMORY_LIMIT = 2 * 1024 ** 3  # the child's address space: an unbounded decode cannot fit


# --- files made by the tests ---------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zeros_stream(total_blocks: int, block: int = 1 << 24) -> bytes:
    """A valid zlib stream of ``total_blocks * block`` zero bytes, built without inflating it:
    after a full flush a deflate block does not refer to earlier data, so it can be repeated."""
    compressor = zlib.compressobj(9)
    zeros = bytes(block)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    size = total_blocks * block
    adler = ((size % 65521) << 16) | 1  # Adler-32 of zero bytes only
    return head + repeated * (total_blocks - 1) + b"\x03\x00" + struct.pack(">I", adler)


def png16_bomb(width: int = 16, height: int = 16, inflated_blocks: int = 192) -> bytes:
    """A 16-bit RGB PNG declaring ``width`` x ``height`` whose IDAT inflates to 3 GiB."""
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zeros_stream(inflated_blocks)) + _chunk(b"IEND", b""))


def tiff16_gray_deflate(width: int, height: int, strip: bytes) -> bytes:
    """A little-endian 16-bit gray TIFF with one deflate strip given as its compressed bytes."""
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 16), (259, 3, 1, 8),
               (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 3, 1, height),
               (279, 4, 1, len(strip))]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + strip


def run_limited(script: str, *paths: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (with ``paths`` as sys.argv[1:]) in a child limited to MEMORY_LIMIT bytes
    of address space; it prints a UserError's message and exits 3."""
    body = textwrap.indent(textwrap.dedent(script).strip(), "    ")
    code = "\n".join([
        "import resource, sys",
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))",
        "from uegan.errors import UserError",
        "try:",
        body,
        "except UserError as error:",
        "    print(error)",
        "    sys.exit(3)",
    ])
    return subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True,
                          text=True, timeout=120)


def icc_profile(description: str, colorants: np.ndarray, curve: bytes) -> bytes:
    """A version 2 RGB matrix/TRC ICC profile: D50 colorants (columns r, g, b), one curve."""
    return matrix_shaper_profile(description, colorants, curve)


# sRGB colorants adapted to D50 (Lindbloom), and sRGB's curve written as an ICC 'para' type 3
SRGB_D50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                     [0.2225045, 0.7168786, 0.0606169],
                     [0.0139322, 0.0971045, 0.7141733]])
SRGB_CURVE = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
    struct.pack(">i", round(v * 65536)) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
LINEAR_CURVE = b"curv\0\0\0\0" + struct.pack(">I", 0)


def srgb_encoded(linear: np.ndarray) -> np.ndarray:
    """The sRGB curve written out (IEC 61966-2-1)."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


# --- memory: the budget holds before anything is allocated -----------------------------------


def test_png16_zlib_bomb_ends_in_one_error_under_a_memory_limit(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png16_bomb())
    assert bomb.stat().st_size < 4 * 1024 ** 2
    result = run_limited("""
        from uegan.io.photo import read_photo
        read_photo(sys.argv[1])
        """, bomb)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stdout.strip()
    assert len(message.splitlines()) == 1
    assert str(bomb) in message and "inflates beyond" in message and "1,552 bytes" in message  # 16 rows of 1 + 16 * 6 bytes


def test_tiff16_deflate_bomb_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(tiff16_gray_deflate(16, 16, zeros_stream(192)))
    result = run_limited("""
        from uegan.io.photo import read_photo
        read_photo(sys.argv[1])
        """, bomb)
    assert result.returncode == 3, result.stderr
    assert str(bomb) in result.stdout and "inflates beyond" in result.stdout


def test_a_strip_is_refused_by_prepare_fivek_before_resizing(tmp_path):
    strip = tmp_path / "a0001-strip.png"
    Image.fromarray(np.full((1, 3000, 3), 128, np.uint8)).save(strip)
    result = run_limited("""
        from pathlib import Path
        from uegan.apps.fivek import prepare_image
        prepare_image(Path(sys.argv[1]), crop=False)
        """, strip)
    assert result.returncode == 3, result.stderr
    assert str(strip) in result.stdout and "aspect ratio" in result.stdout


def test_training_refuses_strips_at_the_scan(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "fine.png")
    Image.fromarray(np.zeros((2, 400, 3), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(UserError, match="aspect ratio") as raised:
        scan_images(tmp_path, "low-quality")
    assert "strip.png" in str(raised.value) and "fine.png" not in str(raised.value)


def test_the_budget_names_its_limits(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    with pytest.raises(PhotoError, match=r"over the limit of 1,000 \(a decompression bomb"):
        read_photo(path, budget=ReadBudget(max_pixels=1000))
    with pytest.raises(PhotoError, match="6,000 bytes decoded, over the limit of 5,000 bytes"):
        read_photo(path, budget=ReadBudget(max_bytes=5000))
    with pytest.raises(PhotoError, match="over the limit of 10 bytes per image"):
        read_photo(path, budget=ReadBudget(max_bytes=10))  # the file itself
    assert read_photo(path, budget=ReadBudget(max_pixels=2000, max_bytes=6000)).size == (50, 40)


# --- colour: handled once, by content ----------------------------------------------------------


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 48 * 64).astype(np.uint16).reshape(48, 64)
    path = tmp_path / "label.png"
    Image.fromarray(values).save(path)  # a 16-bit grayscale PNG
    expected = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    assert np.array_equal(load_rgb8(path), np.repeat(expected[..., None], 3, axis=-1))
    photo = read_photo(path)
    assert photo.bit_depth == 16 and photo.grayscale and np.array_equal(photo.rgb[..., 1], values)
    # FiveK preparation: a 16-bit gray PNG at short edge 512 comes out as its 8-bit copy
    big = np.tile(values[:1], (512, 9))[:, :520]
    Image.fromarray(big).save(tmp_path / "a4501-gray.png")
    prepared, _ = fivek.prepare_image(tmp_path / "a4501-gray.png", crop=False)
    big8 = ((big.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    assert np.array_equal(prepared, np.repeat(big8[..., None], 3, axis=-1))


def test_16bit_cmyk_tiff_is_converted_not_read_as_rgb_with_alpha(tmp_path):
    rng = np.random.default_rng(0)
    inks = rng.integers(0, 65536, (6, 7, 4)).astype(np.uint16)
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, inks, photometric="separated")
    photo = read_photo(path)
    unit = inks / 65535.0
    expected = (1 - unit[..., :3]) * (1 - unit[..., 3:])
    assert photo.alpha is None and photo.rgb.dtype == np.uint16
    assert np.abs(photo.rgb / 65535.0 - expected).max() <= 1 / 65535


def test_16bit_miniswhite_tiff_is_inverted(tmp_path):
    values = np.arange(5 * 9, dtype=np.uint16).reshape(5, 9) * 1000
    path = tmp_path / "white.tif"
    tifffile.imwrite(path, values, photometric="miniswhite")
    photo = read_photo(path)
    assert photo.grayscale and np.array_equal(photo.rgb[..., 0], 65535 - values)


def test_icc_profiles_are_judged_by_content_not_name(tmp_path):
    values = np.array([[[0, 0, 0], [255, 255, 255], [200, 40, 30], [30, 220, 60]],
                       [[20, 40, 230], [128, 128, 128], [250, 250, 10], [90, 160, 200]]],
                      dtype=np.uint8)
    linear = tmp_path / "linear.png"
    Image.fromarray(values).save(linear, icc_profile=icc_profile("sRGB linear", SRGB_D50,
                                                                 LINEAR_CURVE))
    photo = read_photo(linear)
    assert photo.profile == "converted" and photo.converted_from == "sRGB linear"
    expected = srgb_encoded(values / 255.0) * 255
    assert np.abs(photo.rgb - expected).max() <= 1.0
    # sRGB content under another name is left alone
    renamed = tmp_path / "renamed.png"
    Image.fromarray(values).save(renamed, icc_profile=icc_profile("My monitor", SRGB_D50, SRGB_CURVE))
    photo = read_photo(renamed)
    assert photo.profile == "srgb" and np.array_equal(photo.rgb, values)


def test_every_command_reads_through_the_one_reader(tmp_path):
    # a linear-tagged, rotated photo: training and evaluation (load_rgb8), FiveK preparation
    # (read_source) and enhance (read_photo) all see the same sRGB pixels
    values = np.random.default_rng(1).integers(0, 256, (520, 530, 3), dtype=np.uint8)
    image = Image.fromarray(values)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "a4501-photo.png"
    image.save(path, exif=exif, icc_profile=icc_profile("sRGB linear", SRGB_D50, LINEAR_CURVE))
    enhanced_input = read_photo(path).rgb
    expected = np.floor(srgb_encoded(np.rot90(values, -1) / 255.0) * 255 + 0.5)
    assert np.abs(enhanced_input - expected).max() <= 1
    assert np.array_equal(load_rgb8(path), enhanced_input)
    source, how = fivek.read_source(path)
    assert "sRGB linear" in how
    assert np.array_equal(np.floor(source * 255 + 0.5).astype(np.uint8), enhanced_input)


# --- training: --skip-bad-images decodes, and the run folder is never data ------------------


def test_skip_bad_images_finds_a_truncated_jpeg(tmp_path, caplog):
    for index in range(2):
        noise = np.random.default_rng(index).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / f"good{index}.jpg", quality=90)
    data = (tmp_path / "good0.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    with caplog.at_level(logging.WARNING):
        found = scan_images(tmp_path, "low-quality", skip_bad=True)
    assert sorted(info.path.name for info in found) == ["good0.jpg", "good1.jpg"]
    assert "cut.jpg" in caplog.text


# --- one quantisation rule ---------------------------------------------------------------------


def test_one_quantisation_rule_for_every_conversion():
    values = np.array([0.0, 0.25, 0.5, 1.0, -0.1, 1.7, 0.998])
    assert quantize(values, np.uint8).tolist() == [0, 64, 128, 255, 0, 255, 254]
    assert quantize(values, np.uint16).tolist() == [0, 16384, 32768, 65535, 0, 65535, 65404]
    every = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(to_8bit(every), np.floor(every / 65535 * 255 + 0.5).astype(np.uint8))
    assert np.array_equal(fivek.to_uint8(values), quantize(values, np.uint8))
