"""Enhancement: faithful to the published generator, any size, tiled and working-size modes,
the Python API on every kind of image.

References: the published generator's output is recomputed here from the reference weights
(``generator_forward.pt``, checked against its reference output first) with the published
tester's arithmetic written out; padding references use numpy's reflect padding.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIVEK_SAMPLE, load_golden
from uegan.models import tiling
from uegan.checkpoints import save_generator
from uegan.cli import main
from uegan.inference import (Enhancer, fit_local_affine, LocalAffineTransfer, padded_size,
                             tiled_forward, tiling_matches)
from uegan.models.generator import Generator, GeneratorConfig
from uegan.models.layers import GlobalAttention
from uegan.models.published import generator_from_published


@pytest.fixture(scope="module")
def golden_generator():
    golden = load_golden("generator_forward.pt")
    config, state = generator_from_published(golden["state_dict"])
    generator = Generator(config).eval()
    generator.load_state_dict(state)
    with torch.no_grad():  # the reference weights reproduce the published output first
        assert (generator(golden["input"]) - golden["output"]).abs().max() <= 1e-5
    return generator, golden["state_dict"]


@pytest.fixture(scope="module")
def published_pth(golden_generator, tmp_path_factory):
    """A checkpoint in the published layout: {'G_net': ..., 'D_net': ...}."""
    path = tmp_path_factory.mktemp("ckpt") / "published.pth"
    torch.save({"G_net": golden_generator[1], "D_net": {}}, path)
    return path


def published_tester(generator: Generator, pixels: np.ndarray) -> np.ndarray:
    """What the published tester writes for an 8-bit image with sides multiple of 16."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    x = 2 * (x / 255) - 1
    with torch.no_grad():
        y = generator(x)
    v = ((y + 1) / 2).clamp(0, 1)
    return torch.floor(v * 255 + 0.5)[0].permute(1, 2, 0).numpy().astype(np.uint8)


def assert_faithful(result: np.ndarray, reference: np.ndarray) -> None:
    difference = np.abs(result.astype(int) - reference.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() <= 0.001


def random_pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth content plus noise: closer to a photo than pure noise
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(yy / 7.0), np.cos(xx / 9.0), np.sin((xx + yy) / 11.0)], -1)
    pixels = 127.5 + 90 * base + rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def test_cli_output_is_the_published_testers(golden_generator, published_pth, tmp_path):
    generator = golden_generator[0]
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = {"a.png": random_pixels(64, 96, 1), "b.png": random_pixels(128, 48, 2)}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(inputs / name)
    assert main(["enhance", str(inputs), "--checkpoint", str(published_pth),
                 "--out", str(tmp_path / "out")]) == 0
    for name, pixels in images.items():
        with Image.open(tmp_path / "out" / name) as written:
            result = np.asarray(written.convert("RGB"))
        assert_faithful(result, published_tester(generator, pixels))


def test_bare_published_state_dict_and_every_format_agree(golden_generator, tmp_path):
    generator, published_state = golden_generator
    pixels = random_pixels(48, 80, 3)
    reference = published_tester(generator, pixels)
    bare = tmp_path / "bare.pth"
    torch.save(published_state, bare)
    train = tmp_path / "train.pth"
    torch.save({"format": "uegan-train", "generator_config": generator.config.to_dict(),
                "G": generator.state_dict(), "variant": "uegan"}, train)
    export = save_generator(tmp_path / "g.safetensors", generator, "uegan")
    for checkpoint, kind in ((bare, "published"), (train, "train"), (export, "export")):
        enhancer = Enhancer.load(checkpoint)
        assert enhancer.source_format == kind
        assert_faithful(enhancer(pixels), reference)


@pytest.mark.parametrize("height,width", [(37, 53), (50, 17), (33, 100)])
def test_other_sizes_are_reflect_padded_and_cropped(golden_generator, height, width):
    generator = golden_generator[0]
    pixels = random_pixels(height, width, 4)
    padded_h, padded_w = -(-height // 16) * 16, -(-width // 16) * 16
    padded = np.pad(pixels, ((0, padded_h - height), (0, padded_w - width), (0, 0)),
                    mode="reflect")
    reference = published_tester(generator, padded)[:height, :width]
    result = Enhancer(generator)(pixels)
    assert result.shape == pixels.shape
    assert_faithful(result, reference)


@pytest.mark.parametrize("height,width", [(1, 1), (3, 7), (15, 15), (16, 16), (9, 40), (16, 17)])
def test_very_small_images(golden_generator, height, width):
    pixels = random_pixels(height, width, 5)
    result = Enhancer(golden_generator[0])(pixels)
    assert result.shape == (height, width, 3) and result.dtype == np.uint8


def test_padded_size():
    assert padded_size(64, 96) == (64, 96)
    assert padded_size(65, 1) == (80, 16)
    assert padded_size(16, 16) == (16, 32)  # the GAM needs two bottleneck pixels
    assert padded_size(1, 1) == (16, 32)


def test_tiled_forward_equals_the_whole_forward(golden_generator):
    generator = golden_generator[0]
    torch.manual_seed(0)
    x = torch.rand(2, 3, 144, 208) * 2 - 1
    with torch.no_grad():
        whole = generator(x)
    # the README's figure is 1.2e-7 (float rounding); whole-image statistics computed with the
    # sample variance (N - 1) instead of the population variance would be 3e-6 off
    assert (tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-6


@pytest.fixture
def tiled_calls(monkeypatch):
    """The shapes of the images :func:`tiled_forward` is called on (its one-time self-check on
    a 128 x 192 image included), with the tile size."""
    calls = []
    real = tiling.tiled_forward

    def recording(generator, x, tile=tiling.DEFAULT_TILE):
        calls.append((tuple(x.shape), tile))
        return real(generator, x, tile)

    monkeypatch.setattr(tiling, "tiled_forward", recording)
    return calls


def test_full_res_mode_tiles_large_images_exactly(golden_generator, tiled_calls):
    generator = golden_generator[0]
    pixels = random_pixels(150, 270, 6)  # padded to 160 x 272, above 4 tiles of 64 x 64: tiled
    tiled_enhancer = Enhancer(generator, full_res=True, tile=64)
    tiled = tiled_enhancer(pixels)
    # the tiled pass really ran on the image (not the untiled fallback)
    assert ((1, 3, 160, 272), 64) in tiled_calls
    whole_enhancer = Enhancer(generator, max_side=None, tile=512)
    calls_before = len(tiled_calls)
    whole = whole_enhancer(pixels)
    assert len(tiled_calls) == calls_before  # 160 x 272 is below 4 tiles of 512: untiled
    assert_faithful(tiled, whole)
    # and in floating point, as exactly as the forward itself
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    assert (tiled_enhancer.generate(x) - whole_enhancer.generate(x)).abs().max() <= 1e-6


def test_tiled_forward_with_the_modulated_attention():
    if "gam" not in GeneratorConfig.__dataclass_fields__:
        pytest.skip("this tree has no modulated GAM")
    torch.manual_seed(1)
    generator = Generator(GeneratorConfig(conv_dim=8, gam="modulated")).eval()
    for module in generator.modules():
        if hasattr(module, "scale_weight"):
            for param in (module.scale_weight, module.scale_bias, module.shift_weight,
                          module.shift_bias):
                torch.nn.init.normal_(param, std=0.3)
    x = torch.rand(1, 3, 128, 176) * 2 - 1
    with torch.no_grad():
        whole = generator(x)
    assert (tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-6


def test_unknown_layers_fall_back_to_the_whole_forward(golden_generator):
    """A generator the tiled pass does not understand is run whole, with the right result."""
    generator = golden_generator[0]
    assert tiling_matches(generator)

    class Doubled(GlobalAttention):  # looks like the published GAM, computes something else
        def forward(self, x):
            return 2 * super().forward(x)

    changed = copy.deepcopy(generator)
    doubled = Doubled(changed.ga2.channels)
    doubled.load_state_dict(changed.ga2.state_dict())
    changed.ga2 = doubled
    assert not tiling_matches(changed)
    pixels = random_pixels(150, 270, 11)
    tiled_attempt = Enhancer(changed, full_res=True, tile=64)(pixels)
    whole = Enhancer(changed, max_side=None, tile=512)(pixels)
    assert np.array_equal(tiled_attempt, whole)


def test_the_published_generator_passes_the_tiling_check(golden_generator, caplog):
    """The one-time check must accept the published generator: a halo too narrow for the
    receptive field (or anything else that makes the tiled pass inexact) fails it, and
    --full-res then quietly runs untiled."""
    with caplog.at_level("WARNING", logger="uegan"):
        assert tiling_matches(golden_generator[0])
        enhancer = Enhancer(golden_generator[0], full_res=True, tile=64)
        enhancer(random_pixels(150, 270, 12))
    assert enhancer._tiling_ok is True
    assert "cannot be split into tiles" not in caplog.text


def test_local_affine_transfer_reproduces_a_colour_transform():
    """A global 3x3 colour matrix plus offset is carried to full size exactly."""
    matrix = torch.tensor([[0.8, 0.15, 0.0], [0.1, 0.7, 0.1], [0.05, 0.1, 0.75]])
    offset = torch.tensor([0.05, 0.02, 0.1])

    def operator(image):
        return torch.einsum("ij,njhw->nihw", matrix, image) + offset.view(1, 3, 1, 1)

    full = torch.from_numpy(random_pixels(300, 420, 7)).permute(2, 0, 1)[None].float() / 255
    small = torch.nn.functional.interpolate(full, size=(75, 105), mode="bilinear",
                                            antialias=True, align_corners=False)
    transfer = LocalAffineTransfer(fit_local_affine(small, operator(small), radius=2, eps=1e-6),
                                   300, 420)
    result = transfer.apply(full[0], 0)
    assert (result - operator(full)[0]).abs().max() <= 2e-3


def test_working_size_mode_keeps_size_and_follows_the_generator(golden_generator):
    generator = golden_generator[0]
    pixels = random_pixels(200, 300, 8)
    fast = Enhancer(generator, max_side=160)(pixels)
    assert fast.shape == pixels.shape
    direct = Enhancer(generator, max_side=None)(pixels)
    # 45.3 dB measured; the input itself is 30.3 dB from the direct result (this generator
    # changes little), a transfer with eps 1 20.4 dB, with radius 0 (bilinear) 27.3 dB
    assert psnr_8bit(fast, direct) >= 40
    assert psnr_8bit(pixels, direct) < 32


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


class SmoothOperator(torch.nn.Module):
    """A known smooth operator in the generator's place ([-1, 1] in and out): a colour matrix,
    then a gamma and an exposure gain that vary smoothly over the image
    (``benchmarks/transfer_quality.py``'s ``smooth``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = (x + 1) / 2
        _, _, height, width = image.shape
        yy = torch.linspace(0, 1, height).view(1, 1, -1, 1)
        xx = torch.linspace(0, 1, width).view(1, 1, 1, -1)
        matrix = torch.tensor([[0.85, 0.12, 0.03], [0.05, 0.9, 0.05], [0.02, 0.1, 0.88]])
        mixed = torch.einsum("ij,njhw->nihw", matrix, image).clamp(0, 1)
        gamma = 0.75 + 0.3 * xx * (1 - 0.5 * yy)
        gain = 1.1 + 0.15 * torch.sin(math.pi * yy) * torch.cos(math.pi * xx)
        return (mixed.clamp_min(1e-6) ** gamma * gain).clamp(0, 1) * 2 - 1


@pytest.mark.parametrize("relative,size", [
    ("train/raw/a4485-_DSC0026.png", (768, 512)),          # 8x reduction to 96 x 64
    ("train/raw/a4500-Duggan_090428_8065.png", (512, 768)),
    ("val/raw/a4970-DSC_0377.png", (512, 512)),            # 5.3x reduction to 96 x 96
])
def test_working_size_mode_carries_a_smooth_operator_to_full_size(relative, size):
    """Real photos, the default transfer (radius 4, eps 1e-5), working size 96: at least 40 dB
    from the operator applied at full size (measured 44.9 to 48.6 dB; eps 1: 19-25 dB, radius
    0, i.e. bilinear upsampling: 24-33 dB; the input itself: 18-21 dB). The crops keep every
    size a multiple of 16, so no padding moves the operator's coordinates."""
    with Image.open(FIVEK_SAMPLE / relative) as opened:
        pixels = np.asarray(opened.convert("RGB"))[:size[0], :size[1]]
    assert pixels.shape == (*size, 3)
    direct = Enhancer(SmoothOperator(), max_side=None)(pixels)
    fast = Enhancer(SmoothOperator(), max_side=96)(pixels)
    assert psnr_8bit(fast, direct) >= 40
    assert psnr_8bit(pixels, direct) < 22  # the operator is strong


def reference_guided_filter(guide: np.ndarray, target: np.ndarray, radius: int, eps: float
                            ) -> np.ndarray:
    """He et al.'s colour guided filter coefficients, written out in float64: per window of
    (2r+1)^2 pixels (cut at the border), A = cov(p, I) (cov(I, I) + eps 1)^-1 and
    b = mean(p) - A mean(I); then both averaged over the windows again. guide, target: 3 x h x w.
    Returns 12 x h x w: A row-major (output channel first), then b."""
    _, h, w = guide.shape

    def box(image: np.ndarray) -> np.ndarray:
        padded = np.zeros((image.shape[0], h + 1, w + 1))
        padded[:, 1:, 1:] = image.cumsum(1).cumsum(2)
        top = np.clip(np.arange(h) - radius, 0, h)
        bottom = np.clip(np.arange(h) + radius + 1, 0, h)
        left = np.clip(np.arange(w) - radius, 0, w)
        right = np.clip(np.arange(w) + radius + 1, 0, w)
        total = (padded[:, bottom][:, :, right] - padded[:, top][:, :, right]
                 - padded[:, bottom][:, :, left] + padded[:, top][:, :, left])
        count = (bottom - top)[:, None] * (right - left)[None, :]
        return total / count

    mean_i, mean_p = box(guide), box(target)
    coefficients = np.zeros((12, h, w))
    ii = box(np.stack([guide[a] * guide[b] for a in range(3) for b in range(3)]))
    ip = box(np.stack([target[c] * guide[j] for c in range(3) for j in range(3)]))
    for y in range(h):
        for x in range(w):
            mi, mp = mean_i[:, y, x], mean_p[:, y, x]
            sigma = ii[:, y, x].reshape(3, 3) - np.outer(mi, mi) + eps * np.eye(3)
            cross = ip[:, y, x].reshape(3, 3) - np.outer(mp, mi)   # [output c, guide j]
            a = np.linalg.solve(sigma, cross.T).T                   # a sigma = cross
            coefficients[:9, y, x] = a.reshape(9)
            coefficients[9:, y, x] = mp - a @ mi
    return box(coefficients)


def test_default_transfer_is_the_guided_filter_radius_4_eps_1e5():
    """The defaults pinned to the filter written out above: radius 4 (working-size pixels),
    eps 1e-5, on a working-size photo and a generator-like output."""
    with Image.open(FIVEK_SAMPLE / "val" / "raw" / "a4970-DSC_0377.png") as opened:
        small = opened.convert("RGB").resize((48, 40), Image.BILINEAR)
    guide = torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)[None].float() / 255
    target = (SmoothOperator()(guide * 2 - 1) + 1) / 2
    expected = reference_guided_filter(guide[0].double().numpy(), target[0].double().numpy(),
                                       radius=4, eps=1e-5)
    got = fit_local_affine(guide, target)[0].double().numpy()  # the defaults
    assert np.abs(got - expected).max() <= 1e-6  # float32 rounding: 6e-8 (eps 2e-5: 0.3)
    enhancer = Enhancer(SmoothOperator())
    assert (enhancer.guide_radius, enhancer.guide_eps) == (4, 1e-5)


def test_api_returns_the_kind_it_was_given(golden_generator):
    enhancer = Enhancer(golden_generator[0])
    pixels = random_pixels(40, 56, 9)
    reference = enhancer(pixels)
    # PIL: RGB in, RGB out; RGBA keeps its alpha untouched; gray becomes colour
    result = enhancer(Image.fromarray(pixels))
    assert isinstance(result, Image.Image) and result.mode == "RGB"
    assert np.array_equal(np.asarray(result), reference)
    alpha = np.random.default_rng(0).integers(0, 256, (40, 56), dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
    result = enhancer(rgba)
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result)[..., 3], alpha)
    assert np.array_equal(np.asarray(result)[..., :3], reference)
    gray = enhancer(Image.fromarray(pixels[..., 0]))
    assert gray.mode == "RGB" and gray.size == (56, 40)
    # numpy: uint16 and float keep their dtype
    wide = enhancer(pixels.astype(np.uint16) * 257)
    assert wide.dtype == np.uint16 and wide.shape == pixels.shape
    assert np.abs(wide / 257.0 - reference).max() <= 1.0
    floats = enhancer(pixels.astype(np.float32) / 255)
    assert floats.dtype == np.float32
    assert np.abs(floats * 255 - reference).max() <= 0.51
    # torch: float in [0, 1] (3 x H x W or batched) and uint8
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    result = enhancer(tensor)
    assert result.dtype == torch.uint8 and result.shape == tensor.shape
    assert np.array_equal(result.permute(1, 2, 0).numpy(), reference)
    batch = torch.stack([tensor, tensor]).float() / 255
    result = enhancer(batch)
    assert result.shape == batch.shape and result.dtype == torch.float32
    assert (result[0] * 255 - torch.from_numpy(reference).permute(2, 0, 1)).abs().max() <= 0.51
    with pytest.raises(TypeError):
        enhancer("not an image")
