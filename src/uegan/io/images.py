"""Finding and reading image files (kept for its importers): re-exports of
:mod:`uegan.io.listing` and :func:`uegan.io.reader.load_rgb8`."""

from uegan.io.listing import IMAGE_EXTENSIONS, find_images, images_by_stem, is_image_path, list_images
from uegan.io.reader import load_rgb8

__all__ = ["IMAGE_EXTENSIONS", "find_images", "images_by_stem", "is_image_path", "list_images",
           "load_rgb8"]
