"""PSNR / SSIM against the published figures (golden file) and against scikit-image."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import FIVEK_SAMPLE, GOLDEN
from uegan import metrics
from uegan.imageio import load_rgb8

skm = pytest.importorskip("skimage.metrics")

VAL = FIVEK_SAMPLE / "val"


def sk_ssim_published(a: np.ndarray, b: np.ndarray) -> float:
    return skm.structural_similarity(a, b, channel_axis=-1, data_range=255)


def sk_ssim_gaussian(a: np.ndarray, b: np.ndarray) -> float:
    return skm.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)


def crop4(image: np.ndarray) -> np.ndarray:
    return image[4:-4, 4:-4]


@pytest.fixture(scope="module")
def val_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    golden = json.loads((GOLDEN / "fivek_sample_val_input_metrics.json").read_text())
    return [(row["image"], load_rgb8(VAL / "raw" / row["image"]), load_rgb8(VAL / "label" / row["image"]))
            for row in golden["per_image"]]


@pytest.fixture(scope="module")
def golden_rows() -> dict[str, dict]:
    golden = json.loads((GOLDEN / "fivek_sample_val_input_metrics.json").read_text())
    return {row["image"]: row for row in golden["per_image"]}


def random_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish image and a noisy, shifted version of it (SSIM far from 0 and 1)."""
    base = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float64)
    base = np.kron(base, np.ones((4, 4, 1)))[:height, :width]
    a = base.astype(np.uint8)
    b = np.clip(base * 0.8 + 30 + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return a, b


def test_fivek_sample_matches_the_published_figures(val_pairs, golden_rows):
    for name, raw, label in val_pairs:
        assert metrics.psnr(raw, label) == pytest.approx(golden_rows[name]["psnr"], abs=1e-6)
        assert metrics.ssim(raw, label) == pytest.approx(golden_rows[name]["ssim"], abs=1e-6)


def test_published_ssim_equals_scikit_image_on_real_images(val_pairs):
    for _, raw, label in val_pairs:
        assert metrics.ssim(raw, label, "published") == pytest.approx(
            sk_ssim_published(crop4(raw), crop4(label)), abs=1e-9)


def test_gaussian_ssim_equals_scikit_image_on_real_images(val_pairs):
    for _, raw, label in val_pairs:
        ours = metrics.ssim(raw, label, "gaussian")
        assert ours == pytest.approx(sk_ssim_gaussian(crop4(raw), crop4(label)), abs=1e-9)
        # ... and it is a different number from the published protocol's
        assert abs(ours - metrics.ssim(raw, label, "published")) > 1e-4


@pytest.mark.parametrize("height,width", [(64, 64), (37, 91), (120, 53), (19, 19)])
def test_ssim_and_psnr_equal_scikit_image_on_random_sizes(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    a, b = random_pair(rng, height, width)
    assert metrics.psnr(a, b) == pytest.approx(
        skm.peak_signal_noise_ratio(crop4(b), crop4(a), data_range=255), abs=1e-9)
    assert metrics.ssim(a, b) == pytest.approx(sk_ssim_published(crop4(a), crop4(b)), abs=1e-9)
    assert metrics.ssim(a, b, "gaussian") == pytest.approx(sk_ssim_gaussian(crop4(a), crop4(b)), abs=1e-9)


def test_border_zero_is_plain_scikit_image():
    a, b = random_pair(np.random.default_rng(1), 48, 40)
    assert metrics.ssim(a, b, border=0) == pytest.approx(sk_ssim_published(a, b), abs=1e-9)
    assert metrics.psnr(a, b, border=0) == pytest.approx(skm.peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9)


def test_psnr_is_the_spec_formula_in_float64():
    a, b = random_pair(np.random.default_rng(2), 40, 56)
    mse = np.mean((crop4(a).astype(np.float64) - crop4(b).astype(np.float64)) ** 2)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255.0 ** 2 / mse), rel=1e-13)


def test_identical_images_give_inf_psnr_and_ssim_one():
    a, _ = random_pair(np.random.default_rng(3), 32, 32)
    assert metrics.psnr(a, a) == math.inf
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(a, a, "gaussian") == pytest.approx(1.0, abs=1e-12)


def test_tensor_layouts_and_dtypes_agree_with_numpy():
    a, b = random_pair(np.random.default_rng(4), 40, 48)
    expected_psnr = metrics.psnr(a, b)
    expected_ssim = metrics.ssim(a, b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    variants = [
        (ta, tb),  # uint8 HWC
        (ta.permute(2, 0, 1), tb.permute(2, 0, 1)),  # uint8 CHW (a non-contiguous view)
        (ta.float(), tb.float()),  # float HWC in [0, 255]
        (ta.permute(2, 0, 1).double(), tb.permute(2, 0, 1).double()),
        (a, tb),  # numpy and tensor mixed
    ]
    for pred, target in variants:
        assert metrics.psnr(pred, target) == expected_psnr
        assert metrics.ssim(pred, target) == pytest.approx(expected_ssim, abs=1e-14)


def test_batch_functions_match_single_images():
    rng = np.random.default_rng(5)
    pairs = [random_pair(rng, 36, 44) for _ in range(3)]
    pred = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a, _ in pairs])
    target = torch.stack([torch.from_numpy(b).permute(2, 0, 1) for _, b in pairs])
    psnrs = metrics.psnr_batch(pred, target)
    ssims = metrics.ssim_batch(pred, target, "gaussian")
    assert psnrs.dtype == torch.float64 and psnrs.shape == (3,)
    for i, (a, b) in enumerate(pairs):
        assert float(psnrs[i]) == pytest.approx(skm.peak_signal_noise_ratio(crop4(b), crop4(a), data_range=255), abs=1e-9)
        assert float(ssims[i]) == pytest.approx(sk_ssim_gaussian(crop4(a), crop4(b)), abs=1e-9)


@pytest.mark.parametrize("protocol", ["published", "gaussian"])
def test_cpu_bands_and_whole_batch_paths_agree(protocol, monkeypatch):
    """The CPU computes PSNR and SSIM in bands of rows; other devices take whole batches. Both agree."""
    rng = np.random.default_rng(11)
    pairs = [random_pair(rng, 61, 83) for _ in range(2)]
    pred = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a, _ in pairs])
    target = torch.stack([torch.from_numpy(b).permute(2, 0, 1) for _, b in pairs])
    reference = [sk_ssim_published(crop4(a), crop4(b)) if protocol == "published" else sk_ssim_gaussian(crop4(a), crop4(b))
                 for a, b in pairs]
    monkeypatch.setattr(metrics, "CPU_TILE_ELEMENTS", 300)  # several bands, the last one partial
    banded = metrics.ssim_batch(pred, target, protocol)
    assert banded.tolist() == pytest.approx(reference, abs=1e-9)
    window = 7 if protocol == "published" else 11
    cropped_pred, cropped_target = pred[..., 4:-4, 4:-4], target[..., 4:-4, 4:-4]
    whole = metrics._ssim_map_sum(cropped_pred, cropped_target, protocol, window)
    positions = 3 * (cropped_pred.shape[-2] - window + 1) * (cropped_pred.shape[-1] - window + 1)
    assert (whole / positions).tolist() == pytest.approx(reference, abs=1e-9)
    reference_psnr = [skm.peak_signal_noise_ratio(crop4(b), crop4(a), data_range=255) for a, b in pairs]
    assert metrics.psnr_batch(pred, target).tolist() == pytest.approx(reference_psnr, abs=1e-9)
    whole_mse = metrics._squared_error_sum(cropped_pred, cropped_target) / cropped_pred[0].numel()
    assert (10 * torch.log10(255.0 ** 2 / whole_mse)).tolist() == pytest.approx(reference_psnr, abs=1e-9)


def test_bad_inputs_are_rejected():
    a, b = random_pair(np.random.default_rng(6), 32, 32)
    with pytest.raises(ValueError, match="differ"):
        metrics.psnr(a, b[:-1])
    with pytest.raises(ValueError, match="ambiguous"):
        metrics.psnr(torch.zeros(3, 20, 3), torch.zeros(3, 20, 3))
    assert metrics.psnr(torch.zeros(3, 20, 3), torch.ones(3, 20, 3), layout="chw", border=0) == pytest.approx(
        10 * math.log10(255.0 ** 2))
    with pytest.raises(ValueError, match="channels"):
        metrics.ssim(np.zeros((20, 20, 4), np.uint8), np.zeros((20, 20, 4), np.uint8))
    with pytest.raises(ValueError, match="protocol"):
        metrics.ssim(a, b, protocol="matlab")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        metrics.ssim(a[:14, :14], b[:14, :14])  # 6x6 after the crop: smaller than 7x7


def test_quantize_follows_the_spec():
    # The spec's image mapping: x = 2 * pixel / 255 - 1, back with floor(((y+1)/2).clamp(0,1)*255 + 0.5).
    pixels = torch.arange(256, dtype=torch.float32)
    y = 2 * (pixels / 255) - 1
    q = metrics.quantize(y)
    assert q.dtype == torch.uint8
    assert torch.equal(q, pixels.to(torch.uint8))
    # out of range values are clamped
    assert metrics.quantize(torch.tensor([-3.0, -1.0, 1.0, 7.0])).tolist() == [0, 0, 255, 255]
    # random values: the formula evaluated independently in numpy, float32 like the tensor
    rng = np.random.default_rng(7)
    values = rng.uniform(-1.1, 1.1, (3, 17, 19)).astype(np.float32)
    expected = np.floor(np.clip((values + np.float32(1)) / np.float32(2), 0, 1) * np.float32(255) + np.float32(0.5))
    assert np.array_equal(metrics.quantize(torch.from_numpy(values)).numpy(), expected.astype(np.uint8))
    with pytest.raises(TypeError):
        metrics.quantize(torch.zeros(2, dtype=torch.uint8))


def test_quantized_tensors_feed_the_metrics():
    rng = np.random.default_rng(8)
    a, b = random_pair(rng, 32, 40)
    to_m11 = lambda img: torch.from_numpy(img).permute(2, 0, 1).float() / 255 * 2 - 1  # noqa: E731
    assert metrics.ssim(metrics.quantize(to_m11(a)), metrics.quantize(to_m11(b))) == pytest.approx(
        sk_ssim_published(crop4(a), crop4(b)), abs=1e-9)


def test_published_average_is_sum_over_n_minus_1():
    golden = json.loads((GOLDEN / "fivek_sample_val_input_metrics.json").read_text())
    psnrs = [row["psnr"] for row in golden["per_image"]]
    assert metrics.true_mean(psnrs) == pytest.approx(golden["mean_psnr"], abs=1e-12)
    assert metrics.published_script_average(psnrs) == pytest.approx(
        golden["published_script_average_psnr_sum_over_n_minus_1"], abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu():
    a, b = random_pair(np.random.default_rng(9), 64, 80)
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    assert metrics.psnr(ta, tb) == pytest.approx(metrics.psnr(a, b), abs=1e-9)
    for protocol in metrics.SSIM_PROTOCOLS:
        assert metrics.ssim(ta, tb, protocol) == pytest.approx(metrics.ssim(a, b, protocol), abs=1e-9)
