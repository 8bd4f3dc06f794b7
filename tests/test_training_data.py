"""Training data: finding and checking images, augmentation, the two shuffled streams, shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _training_utils import make_images, make_pairs
from PIL import Image

from uegan.errors import UserError
from uegan.training.data import (Augmentation, ImageStream, StepSampler, UnpairedBatches,
                                 count_upscaled, scan_images, scan_validation)


def test_scan_finds_every_extension_in_any_case_recursively(tmp_path):
    made = make_images(tmp_path, 9, seed=0, extensions=(".png", ".JPG", ".jpeg", ".TIF", ".tiff",
                                                        ".webp", ".BMP", ".Png", ".jpg"))
    (tmp_path / "notes.txt").write_text("not an image")
    found = scan_images(tmp_path, "low-quality")
    assert sorted(info.path for info in found) == sorted(made)
    assert {(info.width, info.height) for info in found} == {(140, 130), (150, 140)}


def test_unreadable_files_are_listed_in_one_error_or_skipped(tmp_path, caplog):
    make_images(tmp_path, 3, seed=0)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError) as error:
        scan_images(tmp_path, "high-quality")
    message = str(error.value)
    assert "2 of 5 files" in message and "broken.png" in message and "empty.jpg" in message
    assert "--skip-bad-images" in message
    with caplog.at_level("WARNING"):
        found = scan_images(tmp_path, "high-quality", skip_bad=True)
    assert len(found) == 3
    assert "skipping 2 unreadable image(s)" in caplog.text


def test_augmentation_crop_resize_and_flips(tmp_path):
    # crop size = image size: the only crop is the whole image, so the output must be the
    # bilinear 96 px resize of the image, flipped in one of four ways
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(192, 192, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(image).resize((96, 96), Image.BILINEAR))
    expected = [resized, resized[:, ::-1], resized[::-1], resized[::-1, ::-1]]
    augment = Augmentation(crop_size=192, image_size=96)
    seen = set()
    for seed in range(24):
        out = augment(image, np.random.default_rng(seed))
        assert out.shape == (3, 96, 96) and out.dtype == torch.float32
        pixels = ((out.permute(1, 2, 0).numpy() + 1) / 2 * 255).round().astype(np.uint8)
        matches = [i for i, e in enumerate(expected) if np.array_equal(pixels, e)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}
    no_flips = Augmentation(crop_size=192, image_size=96, hflip=False, vflip=False)
    for seed in range(8):
        out = no_flips(image, np.random.default_rng(seed))
        assert np.array_equal(((out.permute(1, 2, 0).numpy() + 1) * 127.5).round(), resized)


def test_augmentation_crops_are_pieces_of_the_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    augment = Augmentation(crop_size=32, image_size=32, hflip=False, vflip=False)
    for seed in range(10):
        crop = ((augment(image, np.random.default_rng(seed)).permute(1, 2, 0).numpy() + 1) * 127.5).round()
        hits = [(y, x) for y in range(70 - 31) for x in range(90 - 31)
                if np.array_equal(image[y:y + 32, x:x + 32], crop)]
        assert len(hits) == 1


def test_small_images_are_upscaled_and_counted(tmp_path):
    make_images(tmp_path, 4, seed=0, sizes=((100, 80), (300, 260)))
    found = scan_images(tmp_path, "low-quality")
    assert count_upscaled(found, 128) == 2
    image = np.zeros((80, 100, 3), dtype=np.uint8)
    out = Augmentation(crop_size=128, image_size=96)(image, np.random.default_rng(0))
    assert out.shape == (3, 96, 96)


def test_values_are_in_minus_one_one():
    image = np.array([[[0, 255, 51]]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    out = Augmentation(crop_size=4, image_size=4)(image, np.random.default_rng(0))
    assert out[:, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 2 * 51 / 255 - 1])


def test_streams_visit_every_image_once_per_pass():
    stream = ImageStream(7, seed=0, stream_id=0)
    passes = [[stream.index_at(p * 7 + i) for i in range(7)] for p in range(4)]
    assert all(sorted(order) == list(range(7)) for order in passes)
    assert len({tuple(order) for order in passes}) > 1  # reshuffled each pass
    other = ImageStream(7, seed=0, stream_id=1)
    assert [other.index_at(i) for i in range(21)] != [stream.index_at(i) for i in range(21)]
    again = ImageStream(7, seed=0, stream_id=0)
    assert [again.index_at(i) for i in range(21)] == [stream.index_at(i) for i in range(21)]


def test_ranks_share_each_global_batch():
    per_rank = [list(StepSampler(5, 11, steps=3, batch_size=2, rank=r, world_size=3)) for r in range(3)]
    for step in range(3):
        lows = sorted(p for r in range(3) for p in range(per_rank[r][step][0], per_rank[r][step][0] + 2))
        highs = sorted(p for r in range(3) for p in range(per_rank[r][step][1], per_rank[r][step][1] + 2))
        assert lows == list(range(5 + 6 * step, 5 + 6 * step + 6))
        assert highs == list(range(11 + 6 * step, 11 + 6 * step + 6))


def test_batches_are_a_function_of_the_positions(tmp_path):
    make_images(tmp_path / "l", 3, seed=0)
    make_images(tmp_path / "h", 2, seed=1)
    low, high = scan_images(tmp_path / "l", "low"), scan_images(tmp_path / "h", "high")
    data = UnpairedBatches(low, high, 2, Augmentation(128, 96), seed=5)
    a_low, a_high = data[(4, 9)]
    b_low, b_high = UnpairedBatches(low, high, 2, Augmentation(128, 96), seed=5)[(4, 9)]
    assert a_low.shape == (2, 3, 96, 96) and a_high.shape == (2, 3, 96, 96)
    assert torch.equal(a_low, b_low) and torch.equal(a_high, b_high)
    assert not torch.equal(data[(5, 9)][0], a_low)


def test_validation_pairs(tmp_path):
    make_pairs(tmp_path / "vl", tmp_path / "vb", 3, seed=0)
    pairs = scan_validation(tmp_path / "vl", tmp_path / "vb")
    assert [p.stem for p in pairs] == ["pair0", "pair1", "pair2"]
    (tmp_path / "vl" / "extra.png").write_bytes((tmp_path / "vl" / "pair0.png").read_bytes())
    with pytest.raises(UserError, match="no label with the same name.*extra"):
        scan_validation(tmp_path / "vl", tmp_path / "vb")
    (tmp_path / "vl" / "extra.png").unlink()
    Image.new("RGB", (50, 50)).save(tmp_path / "vb" / "pair1.png")
    with pytest.raises(UserError, match="pair1.*112x100.*50x50"):
        scan_validation(tmp_path / "vl", tmp_path / "vb")
