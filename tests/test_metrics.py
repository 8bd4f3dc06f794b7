"""PSNR / SSIM / CIEDE2000 against the published figures (golden file, Sharma et al.'s test
data) and against scikit-image."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import skimage.color as skc  # the test extra: missing, these tests fail, not skip
import skimage.metrics as skm
import torch

from conftest import FIVEK_SAMPLE, GOLDEN
from uegan import metrics
from uegan.io.images import load_rgb8

VAL = FIVEK_SAMPLE / "val"


def sk_ssim_published(a: np.ndarray, b: np.ndarray) -> float:
    return skm.structural_similarity(a, b, channel_axis=-1, data_range=255)


def sk_ssim_gaussian(a: np.ndarray, b: np.ndarray) -> float:
    return skm.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)


def crop4(image: np.ndarray) -> np.ndarray:
    return image[4:-4, 4:-4]


def sk_ciede2000(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    """scikit-image's mean CIEDE2000 of two 8-bit RGB images after the border crop."""
    difference = skc.deltaE_ciede2000(skc.rgb2lab(a), skc.rgb2lab(b))
    return float(difference[border:difference.shape[0] - border, border:difference.shape[1] - border].mean())


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
    monkeypatch.setattr(metrics.protocol, "CPU_TILE_ELEMENTS", 300)  # several bands, the last one partial
    banded = metrics.ssim_batch(pred, target, protocol)
    assert banded.tolist() == pytest.approx(reference, abs=1e-9)
    window = 7 if protocol == "published" else 11
    cropped_pred, cropped_target = pred[..., 4:-4, 4:-4], target[..., 4:-4, 4:-4]
    whole = metrics.fidelity._ssim_map_sum(cropped_pred, cropped_target, protocol, window)
    positions = 3 * (cropped_pred.shape[-2] - window + 1) * (cropped_pred.shape[-1] - window + 1)
    assert (whole / positions).tolist() == pytest.approx(reference, abs=1e-9)
    reference_psnr = [skm.peak_signal_noise_ratio(crop4(b), crop4(a), data_range=255) for a, b in pairs]
    assert metrics.psnr_batch(pred, target).tolist() == pytest.approx(reference_psnr, abs=1e-9)
    whole_mse = metrics.fidelity._squared_error_sum(cropped_pred, cropped_target) / cropped_pred[0].numel()
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
    assert metrics.ciede2000(ta, tb) == pytest.approx(sk_ciede2000(a, b), abs=1e-9)
    assert metrics.ciede2000(ta.float(), tb.float()) == pytest.approx(sk_ciede2000(a, b), abs=1e-9)


# ------------------------------------------------------------------------------------ CIEDE2000

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1: (pair, Lab 1, Lab 2, dE00).
# Pairs 7-8: one colour with zero chroma; 9-16: hues on either side of 0/360 degrees and
# 180 degrees apart (the mean-hue and hue-difference wrap-around); 17-20: large differences;
# 19 and 1-6: the blue region where the rotation term R_T matters; 31-34: dark and light greys.
SHARMA_PAIRS = [
    (1, (50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    (2, (50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    (4, (50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    (7, (50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    (8, (50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    (9, (50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    (10, (50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    (11, (50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    (12, (50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    (13, (50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    (14, (50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    (15, (50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    (16, (50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    (17, (50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    (19, (50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    (22, (50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    (25, (60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    (29, (22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    (31, (90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    (34, (2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_of_lab_pairs_matches_sharma_et_al():
    lab1 = torch.tensor([pair[1] for pair in SHARMA_PAIRS], dtype=torch.float64)
    lab2 = torch.tensor([pair[2] for pair in SHARMA_PAIRS], dtype=torch.float64)
    published = [pair[3] for pair in SHARMA_PAIRS]
    assert metrics.ciede2000_lab(lab1, lab2, dim=-1).tolist() == pytest.approx(published, abs=1e-4)
    # the formula is symmetric: the published value holds with the colours swapped
    assert metrics.ciede2000_lab(lab2, lab1, dim=-1).tolist() == pytest.approx(published, abs=1e-4)


def test_srgb_to_lab_equals_scikit_image_for_every_level_and_random_colours():
    levels = np.arange(256, dtype=np.uint8)
    greys_and_primaries = np.stack([
        np.stack([levels, levels, levels], -1), np.stack([levels, 0 * levels, 0 * levels], -1),
        np.stack([0 * levels, levels, 0 * levels], -1), np.stack([0 * levels, 0 * levels, levels], -1)])
    colours = np.random.default_rng(20).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for image in (greys_and_primaries, colours):
        expected = skc.rgb2lab(image)
        for tensor in (torch.from_numpy(image), torch.from_numpy(image).double()):
            ours = metrics.srgb_to_lab(tensor, dim=-1)
            assert ours.dtype == torch.float64
            np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-10)
    black = metrics.srgb_to_lab(torch.zeros(3, 1, 1, dtype=torch.uint8), dim=0).flatten().tolist()
    assert black == [0.0, 0.0, 0.0]  # L = 116 * 16/116 - 16, and exactly zero chroma


@pytest.mark.parametrize("height,width", [(64, 64), (37, 91), (120, 53), (19, 19)])
def test_ciede2000_equals_scikit_image_on_random_images(height, width):
    rng = np.random.default_rng(height * 1000 + width + 17)
    a, b = random_pair(rng, height, width)
    assert metrics.ciede2000(a, b) == pytest.approx(sk_ciede2000(a, b), abs=1e-9)
    # fully random 8-bit images: large differences, every hue
    c = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    d = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert metrics.ciede2000(c, d) == pytest.approx(sk_ciede2000(c, d), abs=1e-9)


def test_ciede2000_equals_scikit_image_on_real_images(val_pairs):
    for _, raw, label in val_pairs:
        ours = metrics.ciede2000(raw, label)
        assert ours == pytest.approx(sk_ciede2000(raw, label), abs=1e-9)
        assert ours > 1  # the FiveK experts' edits are visible colour changes


def _hue_deg(lab: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360


def test_ciede2000_with_zero_chroma_and_hue_wrap_around():
    """Black (exactly zero chroma), greys, and reds/magentas whose hues lie on either side of
    0 degrees: the branches of the hue difference and of the mean hue."""
    rng = np.random.default_rng(21)
    height, width = 40, 48
    # reds to magentas around b* = 0: R high, G low, B swept; hues from about 330 to 40 degrees
    a = np.zeros((height, width, 3), np.uint8)
    a[..., 0] = rng.integers(150, 256, (height, width))
    a[..., 1] = rng.integers(0, 40, (height, width))
    a[..., 2] = rng.integers(60, 200, (height, width))
    b = np.clip(a.astype(int) + rng.integers(-25, 26, a.shape), 0, 255).astype(np.uint8)
    a[:10, :12] = 0                                           # black against colour
    b[10:20, :12] = 0                                         # colour against black
    a[20:30, :12] = b[20:30, :12] = 0                         # black against black
    grey = rng.integers(0, 256, (10, 12, 1))
    a[30:, :12] = grey
    b[30:, :12] = np.clip(grey + rng.integers(-3, 4, (10, 12, 1)), 0, 255)  # greys against greys
    lab_a, lab_b = skc.rgb2lab(a)[4:-4, 4:-4], skc.rgb2lab(b)[4:-4, 4:-4]
    hue_a, hue_b = _hue_deg(lab_a), _hue_deg(lab_b)
    chroma_a, chroma_b = np.hypot(lab_a[..., 1], lab_a[..., 2]), np.hypot(lab_b[..., 1], lab_b[..., 2])
    coloured = (chroma_a > 5) & (chroma_b > 5)
    assert (coloured & (np.abs(hue_a - hue_b) > 180)).sum() > 50   # pairs straddling 0 degrees
    assert (coloured & (np.abs(hue_a - hue_b) < 180)).sum() > 50
    assert ((chroma_a == 0) | (chroma_b == 0)).sum() > 100          # exactly achromatic pixels
    assert metrics.ciede2000(a, b) == pytest.approx(sk_ciede2000(a, b), abs=1e-9)
    assert metrics.ciede2000(b, a) == pytest.approx(sk_ciede2000(b, a), abs=1e-9)
    assert metrics.ciede2000(a, b, border=0) == pytest.approx(sk_ciede2000(a, b, border=0), abs=1e-9)


def test_ciede2000_of_identical_images_is_zero():
    a, _ = random_pair(np.random.default_rng(22), 32, 40)
    assert metrics.ciede2000(a, a) == 0.0
    assert metrics.ciede2000(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)) == 0.0


def test_ciede2000_layouts_dtypes_and_batches_agree():
    rng = np.random.default_rng(23)
    pairs = [random_pair(rng, 36, 44) for _ in range(3)]
    a, b = pairs[0]
    expected = sk_ciede2000(a, b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for pred, target in [(ta, tb), (ta.permute(2, 0, 1), tb.permute(2, 0, 1)), (ta.float(), tb.float()),
                         (ta.permute(2, 0, 1).double(), tb.permute(2, 0, 1).double()), (a, tb)]:
        assert metrics.ciede2000(pred, target) == pytest.approx(expected, abs=1e-9)
    pred = torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x, _ in pairs])
    target = torch.stack([torch.from_numpy(y).permute(2, 0, 1) for _, y in pairs])
    values = metrics.ciede2000_batch(pred, target)
    assert values.dtype == torch.float64 and values.shape == (3,)
    assert values.tolist() == pytest.approx([sk_ciede2000(x, y) for x, y in pairs], abs=1e-9)


def test_ciede2000_cpu_bands_and_whole_images_agree(monkeypatch):
    rng = np.random.default_rng(24)
    pairs = [random_pair(rng, 61, 83) for _ in range(2)]
    pred = torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x, _ in pairs])
    target = torch.stack([torch.from_numpy(y).permute(2, 0, 1) for _, y in pairs])
    reference = [sk_ciede2000(x, y) for x, y in pairs]
    monkeypatch.setattr(metrics.protocol, "CPU_TILE_ELEMENTS", 300)  # 4 rows of 75 per band, the last partial
    assert metrics.ciede2000_batch(pred, target).tolist() == pytest.approx(reference, abs=1e-9)
    cropped_pred, cropped_target = pred[..., 4:-4, 4:-4], target[..., 4:-4, 4:-4]
    whole = metrics.colour._ciede2000_sum(cropped_pred, cropped_target) / (53 * 75)
    assert whole.tolist() == pytest.approx(reference, abs=1e-9)


def test_ciede2000_rejects_bad_inputs():
    a, b = random_pair(np.random.default_rng(25), 16, 16)
    with pytest.raises(ValueError, match="differ"):
        metrics.ciede2000(a, b[:-1])
    with pytest.raises(ValueError, match="too small"):
        metrics.ciede2000(a[:8], b[:8])
    with pytest.raises(ValueError, match="channels"):
        metrics.srgb_to_lab(torch.zeros(4, 2, 2), dim=0)
