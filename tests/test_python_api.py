"""The Python API treats photos as the command line does: ``from uegan import ...``, an
``Enhancer`` called on a PIL image (EXIF orientation, ICC profile) and ``Enhancer.enhance_file``
(the same bytes as ``uegan enhance``)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from _icc import gamma_curve, matrix_shaper_profile
from conftest import load_golden
from PIL import Image

import uegan
from uegan.cli import main
from uegan.inference import Enhancer
from uegan.io.photo import read_photo, srgb_profile_bytes

ADOBE_D50 = np.array([[0.60974, 0.20528, 0.14919],
                      [0.31111, 0.62567, 0.06322],
                      [0.01947, 0.06087, 0.74457]])  # Adobe RGB (1998) colorants, columns r, g, b
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, path)
    return path


@pytest.fixture(scope="module")
def enhancer(checkpoint):
    return Enhancer.load(checkpoint)


def _pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reopened(image: Image.Image, **save) -> Image.Image:
    """``image`` as a file would give it back (EXIF and ICC in the image's info)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_the_public_pieces_import_from_the_package():
    from uegan import EvaluationConfig, Enhancer as Public, TrainConfig, Trainer, evaluate
    from uegan.evaluation import EvaluationConfig as E, evaluate as e
    from uegan.training.config import TrainConfig as C
    from uegan.training.trainer import Trainer as T

    assert (Public, Trainer, TrainConfig, evaluate, EvaluationConfig) == (Enhancer, T, C, e, E)
    with pytest.raises(AttributeError, match="no attribute 'Enhancr'"):
        uegan.Enhancr  # noqa: B018


def test_a_pil_portrait_with_exif_orientation_comes_back_upright_and_tagged(enhancer):
    stored = _pixels(32, 48)                    # as the camera stored it: landscape
    exif = Image.Exif()
    exif[ORIENTATION] = 6                       # to be shown rotated 90 degrees clockwise
    exif[0x010F] = "uegan test camera"
    image = _reopened(Image.fromarray(stored), exif=exif.tobytes())
    result = enhancer(image)
    upright = np.ascontiguousarray(np.rot90(stored, -1))   # what a viewer shows: 48 x 32
    assert result.size == (32, 48)
    assert np.array_equal(np.asarray(result), enhancer(upright))
    assert result.info["icc_profile"] == srgb_profile_bytes()
    kept = Image.Exif()
    kept.load(result.info["exif"])
    assert kept[ORIENTATION] == 1 and kept[0x010F] == "uegan test camera"


def test_a_pil_image_with_a_wide_gamut_profile_is_converted_to_srgb_first(enhancer, tmp_path):
    stored = _pixels(32, 32, seed=1)
    profile = matrix_shaper_profile("Test Wide RGB", ADOBE_D50, gamma_curve(563 / 256))
    image = _reopened(Image.fromarray(stored), icc_profile=profile)
    result = np.asarray(enhancer(image))
    image.save(tmp_path / "wide.png", icc_profile=profile)
    converted = read_photo(tmp_path / "wide.png").rgb    # the file as every command reads it
    assert not np.array_equal(converted, stored)
    assert np.array_equal(result, enhancer(converted))
    assert not np.array_equal(result, enhancer(stored))


def test_enhance_file_writes_the_bytes_uegan_enhance_writes(enhancer, checkpoint, tmp_path, capsys):
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    Image.fromarray(_pixels(24, 40, seed=2)).save(tmp_path / "photo.jpg", quality=95,
                                                  exif=exif.tobytes())
    assert main(["enhance", str(tmp_path / "photo.jpg"), "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    written = enhancer.enhance_file(tmp_path / "photo.jpg", tmp_path / "api" / "photo.jpg")
    assert written == tmp_path / "api" / "photo.jpg"
    assert written.read_bytes() == (tmp_path / "cli" / "photo.jpg").read_bytes()
    with pytest.raises(uegan.UserError, match="exists"):
        enhancer.enhance_file(tmp_path / "photo.jpg", written)
    enhancer.enhance_file(tmp_path / "photo.jpg", tmp_path / "api" / "photo.png", bit_depth=16)
    with Image.open(tmp_path / "api" / "photo.png") as png:
        assert png.size == (24, 40) and png.info["icc_profile"] == srgb_profile_bytes()


def test_enhance_arrays_shares_one_forward_pass_per_input_size(enhancer, monkeypatch):
    calls = []
    generate = type(enhancer).generate

    def spy(self, x):
        calls.append(tuple(x.shape))
        return generate(self, x)

    monkeypatch.setattr(type(enhancer), "generate", spy)
    images = [_pixels(32, 48, seed) for seed in range(3)] + [_pixels(40, 40, 9)]
    results = enhancer.enhance_arrays(images)
    assert sorted(calls) == [(1, 3, 40, 40), (3, 3, 32, 48)]
    calls.clear()
    singles = [enhancer.enhance_array(image) for image in images]
    assert len(calls) == 4
    for batched, single in zip(results, singles):
        assert batched.shape == single.shape and np.abs(batched.astype(int) - single).max() <= 1
