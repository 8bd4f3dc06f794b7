"""Enhancement: faithful to the published generator, any size, tiled and working-size modes,
the Python API on every kind of image.

References: the published generator's output is recomputed here from the reference weights
(``generator_forward.pt``, checked against its reference output first) with the published
tester's arithmetic written out; padding references use numpy's reflect padding.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_golden
from uegan.checkpoints import save_generator
from uegan.cli import main
from uegan.inference import (Enhancer, fit_local_affine, LocalAffineTransfer, padded_size,
                             tiled_forward, tiling_matches)
from uegan.models.generator import Generator, GeneratorConfig
from uegan.models.layers import GlobalAttention
from uegan.published import generator_from_published


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
    assert (tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-5


def test_full_res_mode_tiles_large_images_exactly(golden_generator):
    generator = golden_generator[0]
    pixels = random_pixels(150, 270, 6)  # above 4 tiles of 64 x 64: tiled
    tiled = Enhancer(generator, full_res=True, tile=64)(pixels)
    whole = Enhancer(generator, max_side=None, tile=512)(pixels)
    assert_faithful(tiled, whole)


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
    assert (tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-5


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
    mse = np.mean((fast.astype(float) - direct.astype(float)) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 20  # same look; the figure is in benchmarks


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
