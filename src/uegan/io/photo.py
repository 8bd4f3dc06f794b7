"""Reading and writing real photos (kept for its importers): re-exports of :mod:`uegan.io.reader`,
:mod:`uegan.io.writer`, :mod:`uegan.io.png16` and the quantisation rule."""

from uegan.io.budget import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ReadBudget
from uegan.io.color import srgb_profile_bytes
from uegan.io.errors import PhotoError
from uegan.io.exif import apply_orientation
from uegan.io.icc import is_srgb_profile
from uegan.io.png16 import png_header, read_png16, write_png16
from uegan.io.quantize import quantize, to_8bit, to_16bit
from uegan.io.reader import Photo, read_photo
from uegan.io.writer import DEFAULT_QUALITY, FORMAT_ALIASES, OUTPUT_FORMATS, normalise_format, write_photo

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "DEFAULT_QUALITY", "FORMAT_ALIASES",
           "OUTPUT_FORMATS", "Photo", "PhotoError", "ReadBudget", "apply_orientation",
           "is_srgb_profile", "normalise_format", "png_header", "quantize", "read_photo",
           "read_png16", "srgb_profile_bytes", "to_16bit", "to_8bit", "write_photo", "write_png16"]
