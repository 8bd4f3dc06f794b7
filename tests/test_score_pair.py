"""uegan.evaluation.score_pair: the published protocol's figures of two in-memory 8-bit images,
checked against scikit-image and the PSNR formula (the references the evaluation is held to)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from uegan.evaluation import score_pair


def test_score_pair_matches_the_references():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    pred = np.clip(label.astype(int) + rng.integers(-25, 26, label.shape), 0, 255).astype(np.uint8)
    scores = score_pair(pred, label)
    assert sorted(scores) == ["ciede2000", "psnr", "ssim"]
    a, b = pred[4:-4, 4:-4].astype(np.float64), label[4:-4, 4:-4].astype(np.float64)
    assert scores["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)), abs=1e-9)
    assert scores["ssim"] == pytest.approx(structural_similarity(a, b, channel_axis=-1, data_range=255),
                                           abs=1e-9)
    assert scores["ciede2000"] == pytest.approx(
        deltaE_ciede2000(rgb2lab(pred), rgb2lab(label))[4:-4, 4:-4].mean(), abs=1e-9)
    same = score_pair(label, label)
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0) and same["ciede2000"] == 0


def test_read_only_images_are_scored_without_a_warning():
    """Pillow decodes into read-only arrays; torch warns about those (``uegan demo`` showed the
    warning to users): score_pair takes them quietly and leaves them as they are."""
    rng = np.random.default_rng(1)
    label = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    pred = label.copy()
    pred[::2] = 255 - pred[::2]
    for array in (pred, label):
        array.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = score_pair(pred, label)
    assert scores == score_pair(pred.copy(), label.copy())
    assert not pred.flags.writeable
