"""How much a reader may spend on one file: the limits that stop small hostile files.

A file is refused before its pixels are allocated when its header declares more pixels than
``max_pixels`` or a decoded size (every sample of every pixel) over ``max_bytes``; a file larger
than ``max_bytes`` on disk is refused before it is read. Decoders that inflate compressed data
themselves bound the output by the size the header declares (see :mod:`uegan.io.png16`), so a
file can never make a reader allocate more than its header promised.

Resizing needs its own rule: a 1 x 3000 strip scaled to a 512-pixel short edge becomes
512 x 1 536 000 pixels. :func:`check_aspect` refuses such strips before anything is resized.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from uegan.io.errors import PhotoError

DEFAULT_MAX_PIXELS = 200_000_000  # over this a file is taken for a decompression bomb
DEFAULT_MAX_BYTES = 2 * 1024 ** 3  # decoded samples (and the file itself) over this are refused
_CHUNK_READ = 1 << 20  # inflate at most this many bytes of input per step
MAX_ASPECT_RATIO = 20.0  # long edge / short edge accepted where an image is resized


@dataclass(frozen=True)
class ReadBudget:
    """The most a reader may allocate for one file; None means no limit."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_bytes: int | None = DEFAULT_MAX_BYTES

    def check_file_size(self, path: str | Path, size: int) -> None:
        """Refuse a file whose size alone is over ``max_bytes``."""
        if self.max_bytes is not None and size > self.max_bytes:
            raise PhotoError(f"{path}: the file is {size:,} bytes, over the limit of "
                             f"{self.max_bytes:,} bytes per image")

    def check_pixels(self, path: str | Path, width: int, height: int,
                     bytes_per_pixel: int = 3) -> None:
        """Refuse a header's declared size when it is over either limit (nothing allocated yet)."""
        pixels = width * height
        if self.max_pixels is not None and pixels > self.max_pixels:
            raise PhotoError(f"{path}: {width} x {height} = {pixels:,} pixels is over the limit "
                             f"of {self.max_pixels:,} (a decompression bomb?; uegan enhance can "
                             f"raise it with --max-pixels)")
        decoded = pixels * bytes_per_pixel
        if self.max_bytes is not None and decoded > self.max_bytes:
            raise PhotoError(f"{path}: {width} x {height} pixels would take {decoded:,} bytes "
                             f"decoded, over the limit of {self.max_bytes:,} bytes per image")


def check_aspect(path: str | Path, width: int, height: int,
                 max_ratio: float = MAX_ASPECT_RATIO) -> None:
    """Refuse an image whose long edge is over ``max_ratio`` times its short edge."""
    short, long = min(width, height), max(width, height)
    if short < 1:
        raise PhotoError(f"{path}: image has no pixels ({width} x {height})")
    if long > max_ratio * short:
        raise PhotoError(f"{path}: {width} x {height} pixels is a strip (aspect ratio over "
                         f"{max_ratio:g}:1) that cannot be resized safely; crop it first")


def inflate_bounded(parts: list[bytes], expected: int, name: str | Path, exact: bool = True
                    ) -> bytes:
    """Inflate the zlib stream split over ``parts`` to at most ``expected`` bytes.

    A :class:`PhotoError` when the stream holds more (a zlib bomb), is corrupt, or (``exact``)
    holds less. Nothing beyond ``expected + 1`` bytes is ever allocated.
    """
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for part in parts:
            for start in range(0, len(part), _CHUNK_READ):
                out += inflater.decompress(part[start:start + _CHUNK_READ], expected - len(out) + 1)
                if len(out) > expected or inflater.unconsumed_tail and inflater.decompress(
                        inflater.unconsumed_tail, 1):
                    raise PhotoError(f"{name}: its image data inflates beyond the {expected:,} "
                                     f"bytes its header declares (a decompression bomb?)")
                if inflater.eof:
                    break
    except zlib.error as error:
        raise PhotoError(f"{name}: corrupt compressed data ({error})") from error
    if exact and len(out) < expected:
        raise PhotoError(f"{name}: truncated image ({len(out):,} of {expected:,} bytes of pixel data)")
    return bytes(out)
