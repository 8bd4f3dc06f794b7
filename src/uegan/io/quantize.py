"""The one rule that turns [0, 1] values into integers, and the conversions between depths.

``floor(v * max + 0.5)`` after clipping to [0, 1] (round half up), the rounding of the
published tester. :func:`to_8bit` and :func:`to_16bit` change the depth of integer samples
by the same rule: ``to_8bit(v) == quantize(v / 65535, uint8)`` exactly, and 8-bit values
map to 16 bits as ``v * 257`` (``v / 255`` in 16-bit units, exact).
"""

from __future__ import annotations

import numpy as np

_MAXIMA = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def quantize(values: np.ndarray, dtype: type | np.dtype = np.uint8) -> np.ndarray:
    """Float values in [0, 1] (clipped) -> ``uint8`` or ``uint16``: ``floor(v * max + 0.5)``."""
    target = np.dtype(dtype)
    if target not in _MAXIMA:
        raise ValueError(f"quantize: unsupported dtype {target} (uint8 or uint16)")
    scaled = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * _MAXIMA[target]
    return np.floor(scaled + 0.5).astype(target)


def to_8bit(array: np.ndarray) -> np.ndarray:
    """``uint8`` unchanged; ``uint16`` rounded to the nearest 8-bit level (half up)."""
    if array.dtype == np.uint8:
        return array
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_16bit(array: np.ndarray) -> np.ndarray:
    """``uint16`` unchanged; ``uint8`` scaled exactly (``v * 257``)."""
    if array.dtype == np.uint16:
        return array
    return array.astype(np.uint16) * 257


def to_unit(array: np.ndarray, dtype: type | np.dtype = np.float32) -> np.ndarray:
    """``uint8`` or ``uint16`` samples as floats in [0, 1]."""
    maximum = _MAXIMA.get(array.dtype)
    if maximum is None:
        raise ValueError(f"to_unit: unsupported dtype {array.dtype} (uint8 or uint16)")
    return (array / maximum).astype(dtype)
