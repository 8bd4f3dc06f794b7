"""Photo files through an :class:`~uegan.inference.enhancer.Enhancer`: read with the project's
reader, enhanced a batch at a time, written as ``uegan enhance`` writes them (atomically, tagged
sRGB, EXIF kept, 8 or 16 bits)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from uegan.errors import UserError
from uegan.io import photo as photo_io
from uegan.io.files import atomic_path
from uegan.io.photo import (DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS, normalise_format,
                            to_8bit, to_16bit)



class ArrayEnhancer(Protocol):
    """What this module needs of an Enhancer."""

    def enhance_arrays(self, images: list[np.ndarray], out_dtype: Any = None) -> list[np.ndarray]:
        ...


Outcome = tuple[Path, Path, Exception | None]


def enhance_files(enhancer: ArrayEnhancer, pairs: Iterable[tuple[str | Path, str | Path]], *,
                  batch_size: int = 1, format: str | None = None, bit_depth: int = 8,
                  quality: int = DEFAULT_QUALITY, overwrite: bool = False,
                  max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[Outcome]:
    """``(source, out, None)`` for each file written, ``(source, out, error)`` for each that
    failed (the others go on); ``batch_size`` photos are read and enhanced together."""
    if batch_size < 1:
        raise UserError(f"batch size {batch_size}: must be at least 1")
    pairs = [(Path(source), Path(out)) for source, out in pairs]
    chunks = (pairs[start:start + batch_size] for start in range(0, len(pairs), batch_size))
    return (outcome for chunk in chunks
            for outcome in _enhance_chunk(enhancer, chunk, format, bit_depth, quality, overwrite,
                                          max_pixels))


def _enhance_chunk(enhancer: ArrayEnhancer, chunk: list[tuple[Path, Path]], format: str | None,
                   bit_depth: int, quality: int, overwrite: bool, max_pixels: int | None
                   ) -> Iterator[Outcome]:
    read = []
    for source, out in chunk:
        try:
            target = normalise_format(format or out.suffix)
            bits = 16 if bit_depth == 16 and OUTPUT_FORMATS[target][2] else 8
            read.append((source, out, target, bits,
                         photo_io.read_photo(source, max_pixels=max_pixels)))
        except Exception as error:  # this file only
            yield source, out, error
    try:
        results = enhancer.enhance_arrays([item[4].rgb for item in read],
                                          [np.uint16 if item[3] == 16 else np.uint8
                                           for item in read])
    except Exception as error:  # e.g. out of memory: every file of the batch
        yield from ((item[0], item[1], error) for item in read)
        return
    for (source, out, target, bits, photo), rgb in zip(read, results):
        try:
            write_result(photo, rgb, out, target, bits, quality, overwrite)
        except Exception as error:
            yield source, out, error
        else:
            yield source, out, None


def write_result(photo: Any, rgb: np.ndarray, out: Path, format: str, bits: int, quality: int,
                 overwrite: bool) -> None:
    """The enhanced ``rgb`` of ``photo`` (its alpha and EXIF kept) into ``out``, atomically."""
    alpha = photo.alpha
    if alpha is not None:
        alpha = to_16bit(alpha) if bits == 16 else to_8bit(alpha)
    with atomic_path(out, overwrite=overwrite) as temporary:
        photo_io.write_photo(temporary, rgb, format=format, alpha=alpha, exif=photo.exif,
                             quality=quality, bit_depth=bits)
