"""Reading and writing photos: orientation, colour profiles, alpha, grayscale, 16 bits, formats.

References: Pillow's own ``exif_transpose``; colour conversion written out here from the
profile's primaries and tone curve; a PNG encoder and decoder written out here (every filter
type); tifffile for 16-bit TIFF.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from uegan.io.photo import PhotoError, read_photo, write_photo
from _icc import gamma_curve, matrix_shaper_profile

# --- an ICC profile written out: Adobe RGB (1998) primaries (D50-adapted), gamma 563/256 -------

ADOBE_GAMMA = 563 / 256
ADOBE_D50 = np.array([[0.60974, 0.20528, 0.14919],
                      [0.31111, 0.62567, 0.06322],
                      [0.01947, 0.06087, 0.74457]])  # columns: red, green, blue
SRGB_D50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                     [0.2225045, 0.7168786, 0.0606169],
                     [0.0139322, 0.0971045, 0.7141733]])


def adobe_like_profile() -> bytes:
    """A wide-gamut profile (Adobe RGB's colorants, gamma 563/256) under a name of its own."""
    return matrix_shaper_profile("Test Wide RGB", ADOBE_D50, gamma_curve(563 / 256))


def adobe_to_srgb(values: np.ndarray) -> np.ndarray:
    """The conversion written out: decode gamma, to XYZ (D50), to linear sRGB, clip, encode."""
    linear = np.power(values, ADOBE_GAMMA)
    srgb_linear = np.clip(linear @ (np.linalg.inv(SRGB_D50) @ ADOBE_D50).T, 0, 1)
    return np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear,
                    1.055 * np.power(srgb_linear, 1 / 2.4) - 0.055)


# --- a PNG encoder and decoder written out (slow, for small images) ----------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _predict(kind: int, raw: bytes | bytearray, prior: bytes | bytearray, i: int, bpp: int) -> int:
    left = raw[i - bpp] if i >= bpp else 0
    up = prior[i]
    upleft = prior[i - bpp] if i >= bpp else 0
    return [0, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]


def png16_written_out(array: np.ndarray, kinds=(0, 1, 2, 3, 4)) -> bytes:
    """A 16-bit PNG, the filter type of row y being kinds[y % len(kinds)]."""
    height, width, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    rows = array.astype(">u2").tobytes()
    stride = width * bpp
    prior = bytes(stride)
    out = bytearray()
    for y in range(height):
        raw = rows[y * stride:(y + 1) * stride]
        kind = kinds[y % len(kinds)]
        out.append(kind)
        out += bytes((raw[i] - _predict(kind, raw, prior, i, bpp)) & 255 for i in range(stride))
        prior = raw

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


def png16_read_written_out(data: bytes) -> tuple[np.ndarray, dict[bytes, bytes]]:
    position, chunks, idat = 8, {}, b""
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8:position + 8 + length]
        chunks[kind] = body
        if kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 16
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[colour]
    bpp, stride = 2 * channels, width * 2 * channels
    raw = zlib.decompress(idat)
    prior = bytearray(stride)
    pixels = bytearray()
    for y in range(height):
        kind = raw[y * (stride + 1)]
        filtered = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        row = bytearray(stride)
        for i in range(stride):
            row[i] = (filtered[i] + _predict(kind, row, prior, i, bpp)) & 255
        pixels += row
        prior = row
    return np.frombuffer(bytes(pixels), ">u2").reshape(height, width, channels), chunks


def gradient16(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65536, (height, width, channels)).astype(np.uint16)


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    path = tmp_path / "o.png"
    image.save(path, exif=exif)
    with Image.open(path) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    photo = read_photo(path)
    assert np.array_equal(photo.rgb, expected)
    kept = Image.Exif()
    kept.load(photo.exif)
    assert kept.get(0x0112) == 1 and kept.get(0x010F) == "TestCam"


def test_non_srgb_profile_is_converted_8bit(tmp_path):
    values = np.array([[[0, 0, 0], [255, 255, 255], [200, 40, 30], [30, 220, 60]],
                       [[20, 40, 230], [128, 128, 128], [250, 250, 10], [90, 160, 200]]],
                      dtype=np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(values).save(path, icc_profile=adobe_like_profile())
    photo = read_photo(path)
    assert photo.converted_from == "Test Wide RGB"
    expected = adobe_to_srgb(values / 255.0) * 255
    assert np.abs(photo.rgb.astype(float) - expected).max() <= 2.5
    # an sRGB-tagged file is left alone
    from uegan.io.photo import srgb_profile_bytes
    Image.fromarray(values).save(tmp_path / "srgb.png", icc_profile=srgb_profile_bytes())
    assert np.array_equal(read_photo(tmp_path / "srgb.png").rgb, values)


def test_non_srgb_profile_is_converted_16bit(tmp_path):
    values = gradient16(5, 7, 3, seed=1)
    data = png16_written_out(values)
    # add the profile as an iCCP chunk right after IHDR
    icc = adobe_like_profile()
    body = b"wide\x00\x00" + zlib.compress(icc)
    iccp = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    path = tmp_path / "wide16.png"
    path.write_bytes(data[:33] + iccp + data[33:])
    photo = read_photo(path)
    assert photo.rgb.dtype == np.uint16 and photo.converted_from == "Test Wide RGB"
    expected = adobe_to_srgb(values / 65535.0)
    assert np.abs(photo.rgb / 65535.0 - expected).max() <= 1e-3


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_every_filter_read_at_full_precision(tmp_path, channels):
    values = gradient16(9, 11, channels, seed=channels)
    path = tmp_path / "x.png"
    path.write_bytes(png16_written_out(values))
    photo = read_photo(path)
    assert photo.bit_depth == 16 and photo.rgb.dtype == np.uint16
    colour = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, axis=-1)
    assert np.array_equal(photo.rgb, colour)
    assert photo.grayscale == (channels <= 2)
    if channels in (2, 4):
        assert np.array_equal(photo.alpha, values[..., -1])
    else:
        assert photo.alpha is None


def test_16bit_png_with_only_simple_filters(tmp_path):
    values = gradient16(6, 5, 3, seed=7)
    path = tmp_path / "x.png"
    path.write_bytes(png16_written_out(values, kinds=(1, 2, 0)))
    assert np.array_equal(read_photo(path).rgb, values)


def test_16bit_png_written_at_full_precision_with_srgb_and_exif(tmp_path):
    values = gradient16(6, 8, 3, seed=3)
    alpha = gradient16(6, 8, 1, seed=4)[..., 0]
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    path = tmp_path / "out.png"
    write_photo(path, values, format="png", alpha=alpha, exif=exif.tobytes(), bit_depth=16)
    decoded, chunks = png16_read_written_out(path.read_bytes())
    assert np.array_equal(decoded[..., :3], values)
    assert np.array_equal(decoded[..., 3], alpha)
    assert b"iCCP" in chunks and b"eXIf" in chunks
    with Image.open(path) as image:  # Pillow reads it too (at 8 bits), with its sRGB profile
        assert image.size == (8, 6)
        assert "sRGB" in read_photo_profile(image)
        assert image.getexif().get(0x010F) == "TestCam"


def test_16bit_tiff_round_trip(tmp_path):
    import tifffile  # a dependency of uegan: missing, the test fails

    values = gradient16(7, 9, 3, seed=5)
    tifffile.imwrite(tmp_path / "in.tif", values, photometric="rgb")
    photo = read_photo(tmp_path / "in.tif")
    assert photo.bit_depth == 16 and np.array_equal(photo.rgb, values)
    write_photo(tmp_path / "out.tif", values, format="tiff", bit_depth=16)
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), values)


def test_grayscale_and_alpha_8bit(tmp_path):
    gray = (np.arange(30, dtype=np.uint8).reshape(5, 6) * 8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    photo = read_photo(tmp_path / "g.png")
    assert photo.grayscale and photo.rgb.shape == (5, 6, 3)
    assert np.array_equal(photo.rgb, np.repeat(gray[..., None], 3, axis=-1))
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    photo = read_photo(tmp_path / "a.png")
    assert np.array_equal(photo.rgb, rgba[..., :3]) and np.array_equal(photo.alpha, rgba[..., 3])
    Image.fromarray(np.dstack([gray, gray[::-1]]), "LA").save(tmp_path / "la.png")
    photo = read_photo(tmp_path / "la.png")
    assert photo.grayscale and np.array_equal(photo.alpha, gray[::-1])


@pytest.mark.parametrize("format", ["png", "jpeg", "tiff", "webp", "bmp"])
def test_every_output_format(tmp_path, format):
    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / f"x.{format}"
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    write_photo(path, pixels, format=format, exif=exif.tobytes(), quality=90)
    with Image.open(path) as image:
        assert image.size == (30, 20)
        if format in ("png", "tiff", "bmp"):  # lossless
            assert np.array_equal(np.asarray(image.convert("RGB")), pixels)
        if format != "bmp":
            assert "sRGB" in read_photo_profile(image)
            assert image.getexif().get(0x010F) == "TestCam"


def read_photo_profile(image: Image.Image) -> str:
    from io import BytesIO

    from PIL import ImageCms
    profile = ImageCms.ImageCmsProfile(BytesIO(image.info["icc_profile"]))
    return profile.profile.profile_description


def test_jpeg_quality_is_honoured(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_photo(tmp_path / "low.jpg", pixels, format="jpeg", quality=20)
    write_photo(tmp_path / "high.jpg", pixels, format="jpeg", quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


def test_sixteen_bits_refused_for_8bit_formats(tmp_path):
    from uegan.errors import UserError
    with pytest.raises(UserError, match="16 bits"):
        write_photo(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint16), format="jpeg",
                    bit_depth=16)


def test_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 100).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    # a decompression bomb: a header that claims 60000 x 60000 pixels
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(1 << 16))) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    for name, reason in (("empty.png", "empty file"), ("text.png", "not an image"),
                         ("cut.png", "truncated or corrupt"), ("bomb.png", "over the limit"),
                         ("missing.png", "cannot read")):
        with pytest.raises(PhotoError, match=reason) as raised:
            read_photo(tmp_path / name)
        assert name in str(raised.value)
    with pytest.raises(PhotoError, match="over the limit"):
        read_photo(good, max_pixels=100)
