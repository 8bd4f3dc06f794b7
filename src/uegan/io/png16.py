"""The 16-bit PNG codec (Pillow has no 16-bit RGB mode): zlib and numpy.

Reading never allocates more than the header declares: the image data is inflated with a
bounded ``zlib.decompressobj`` loop that stops at the declared size, so a tiny file whose data
inflates to gigabytes (a zlib bomb) ends in a :class:`PhotoError`, not in an exhausted memory.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from uegan.io.budget import ReadBudget, inflate_bounded
from uegan.io.errors import PhotoError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # colour type -> samples per pixel


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) from a PNG's first bytes, or None."""
    if len(data) < 33 or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, colour, interlace


def _chunks(data: bytes, name: str | Path) -> Iterator[tuple[bytes, bytes]]:
    if data[:8] != SIGNATURE:
        raise PhotoError(f"{name}: not a PNG file")
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8:position + 8 + length]
        if len(body) < length:
            raise PhotoError(f"{name}: truncated PNG (chunk {kind.decode('latin-1')} is cut short)")
        yield kind, body
        position += 12 + length
        if kind == b"IEND":
            return
    raise PhotoError(f"{name}: truncated PNG (no IEND chunk)")


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters: ``rows`` is H x (1 + row bytes), filter type first."""
    kinds = rows[:, 0]
    data = rows[:, 1:]
    height, width_bytes = data.shape
    if np.any(kinds > 4):
        raise PhotoError("invalid PNG filter type")
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


def read_png16(data: bytes, name: str | Path, budget: ReadBudget = ReadBudget()) -> np.ndarray:
    """A non-interlaced 16-bit PNG (its bytes) as H x W x C ``uint16`` (C = 1, 2, 3 or 4)."""
    header = None
    compressed: list[bytes] = []
    for kind, body in _chunks(data, name):
        if kind == b"IHDR":
            if len(body) < 13:
                raise PhotoError(f"{name}: corrupt PNG header")
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            compressed.append(body)
    if header is None:
        raise PhotoError(f"{name}: PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    channels = CHANNELS.get(colour)
    if depth != 16 or channels is None:
        raise PhotoError(f"{name}: not a 16-bit PNG")
    if interlace:
        raise PhotoError(f"{name}: interlaced 16-bit PNG is not supported; save it without "
                         f"interlacing")
    if width < 1 or height < 1:
        raise PhotoError(f"{name}: image has no pixels ({width} x {height})")
    bpp = 2 * channels
    budget.check_pixels(name, width, height, bpp)
    raw = inflate_bounded(compressed, height * (1 + width * bpp), name)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * bpp)
    try:
        pixels = _unfilter(rows, bpp)
    except PhotoError as error:
        raise PhotoError(f"{name}: corrupt PNG ({error})") from error
    return pixels.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png16(array: np.ndarray, icc: bytes | None = None, exif: bytes | None = None,
                 level: int = 6) -> bytes:
    """H x W x C ``uint16`` (C = 1..4) as the bytes of a 16-bit PNG (Sub filter), with iCCP and
    eXIf."""
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    data = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(height, width * bpp)
    filtered = data.copy()
    filtered[:, bpp:] -= data[:, :-bpp]  # Sub filter, modulo 256
    rows = np.concatenate([np.ones((height, 1), dtype=np.uint8), filtered], axis=1)
    parts = [SIGNATURE,
             _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))]
    if icc:
        parts.append(_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc)))
    if exif:
        parts.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    compressed = zlib.compress(rows.tobytes(), level)
    for start in range(0, len(compressed), 1 << 20):
        parts.append(_chunk(b"IDAT", compressed[start:start + (1 << 20)]))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def write_png16(path: str | Path, array: np.ndarray, icc: bytes | None = None,
                exif: bytes | None = None, level: int = 6) -> None:
    """Write :func:`encode_png16`'s bytes to ``path`` (callers wrap it in an atomic write)."""
    Path(path).write_bytes(encode_png16(array, icc, exif, level))
