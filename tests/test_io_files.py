"""Finding files (exclude, symbolic-link loops) and writing them (permissions, the names in
messages, byte-identical outputs)."""

from __future__ import annotations

import errno
import logging
import os

import numpy as np
import pytest
from PIL import Image

from uegan.io.files import atomic_path, atomic_write_text
from uegan.io.images import find_images, list_images
from uegan.io.photo import write_photo
from uegan.training.data import scan_images


def _image(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(path)


def test_excluded_folders_are_never_listed(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "run" / "samples" / "b.png")
    _image(tmp_path / "sub" / "c.png")
    run = tmp_path / "run"
    assert list_images(tmp_path, exclude=[run]) == [tmp_path / "a.png", tmp_path / "sub" / "c.png"]
    assert find_images(tmp_path, exclude=[run, tmp_path / "sub"]) == [tmp_path / "a.png"]
    assert [info.path for info in scan_images(tmp_path, "low-quality", exclude=[run])] == [
        tmp_path / "a.png", tmp_path / "sub" / "c.png"]
    assert len(list_images(tmp_path)) == 3


def test_symbolic_link_loops_are_skipped_with_a_warning(tmp_path, caplog):
    _image(tmp_path / "photos" / "a.png")
    _image(tmp_path / "elsewhere" / "b.png")
    (tmp_path / "photos" / "up").symlink_to(tmp_path / "photos")
    (tmp_path / "photos" / "self.png").symlink_to(tmp_path / "photos" / "self.png")
    (tmp_path / "photos" / "more").symlink_to(tmp_path / "elsewhere")
    with caplog.at_level(logging.WARNING):
        found = list_images(tmp_path / "photos")
    assert found == [tmp_path / "photos" / "a.png", tmp_path / "photos" / "more" / "b.png"]
    assert str(tmp_path / "photos" / "up") in caplog.text
    assert str(tmp_path / "photos" / "self.png") in caplog.text


def test_atomic_writes_honour_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600


def test_errors_and_warnings_name_the_real_file(tmp_path, caplog):
    target = tmp_path / "out.jpg"
    with pytest.raises(OSError) as raised:
        with atomic_path(target) as temporary:
            raise OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert str(target) in str(raised.value) and ".tmp" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []
    with caplog.at_level(logging.WARNING), atomic_path(target) as temporary:
        write_photo(temporary, np.zeros((4, 4, 3), np.uint8), format="jpeg",
                    alpha=np.zeros((4, 4), np.uint8))
    assert f"{target}: JPEG has no alpha channel" in caplog.text and ".tmp" not in caplog.text


@pytest.mark.parametrize("format, bits", [("png", 8), ("jpeg", 8), ("tiff", 8), ("webp", 8),
                                          ("png", 16), ("tiff", 16)])
def test_the_same_image_gives_the_same_bytes(tmp_path, format, bits):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    first, second = tmp_path / f"first.{format}", tmp_path / f"second.{format}"
    write_photo(first, rgb, format=format, bit_depth=bits)
    write_photo(second, rgb, format=format, bit_depth=bits)
    assert first.read_bytes() == second.read_bytes()
    if bits == 8 and format != "tiff":
        with Image.open(first) as written:
            profile = written.info["icc_profile"]
        assert profile[24:36] == bytes(12)  # no creation time in the embedded sRGB profile
