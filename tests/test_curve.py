"""uegan-charbonnier-curve: global tone curves predicted from the image's statistics.

The references are written out here: a numpy histogram and np.interp through the knots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uegan.checkpoints import load_generator, save_generator
from uegan.inference import tiled_forward, tiling_matches
from uegan.models import Generator, GeneratorConfig
from uegan.models.curve import GlobalCurve, apply_curves, image_statistics
from uegan.models.init import init_orthogonal
from uegan.variants import get_variant, variant_for

VARIANT = "uegan-charbonnier-curve"


def _randomise_curve(generator: Generator, seed: int = 3, std: float = 0.5) -> None:
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        last = generator.curve.mlp[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=rng) * std)
        last.bias.copy_(torch.randn(last.bias.shape, generator=rng) * std)


def test_statistics_against_numpy():
    rng = np.random.default_rng(0)
    v = rng.random((2, 3, 20, 30))
    got = image_statistics(torch.from_numpy(v)).numpy()
    bins = 16
    for n in range(2):
        for c in range(3):
            flat = v[n, c].ravel()
            assert got[n, c, 0] == pytest.approx(flat.mean(), abs=1e-12)
            assert got[n, c, 1] == pytest.approx(flat.std(), abs=1e-12)
            # triangular kernel of width 1/15 around each centre k/15: linear interpolation
            # of every value onto its two neighbouring bins
            expected = np.zeros(bins)
            position = flat * (bins - 1)
            low = np.floor(position).astype(int).clip(0, bins - 2)
            frac = position - low
            np.add.at(expected, low, 1 - frac)
            np.add.at(expected, low + 1, frac)
            assert np.allclose(got[n, c, 2:], expected / flat.size, atol=1e-12)


def test_curves_are_piecewise_linear_through_the_knots():
    rng = np.random.default_rng(1)
    knots = 8
    logits = rng.normal(size=(2, 3, knots))
    v = rng.random((2, 3, 5, 7))
    v[0, 0, 0, :3] = [0.0, 1.0, 0.5]
    got = apply_curves(torch.from_numpy(v), torch.from_numpy(logits)).numpy()
    for n in range(2):
        for c in range(3):
            slopes = np.exp(logits[n, c]) / np.exp(logits[n, c]).sum()
            ys = np.concatenate([[0.0], np.cumsum(slopes)])
            xs = np.linspace(0, 1, knots + 1)
            assert np.allclose(got[n, c], np.interp(v[n, c], xs, ys), atol=1e-12)
    assert got[0, 0, 0, 0] == 0.0 and got[0, 0, 0, 1] == pytest.approx(1.0, abs=1e-12)


def test_zero_logits_are_the_identity_and_curves_are_monotone():
    v = torch.linspace(0, 1, 1001, dtype=torch.float64).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    assert torch.allclose(apply_curves(v, torch.zeros(1, 3, 16, dtype=torch.float64)), v, atol=1e-12)
    curved = apply_curves(v, torch.randn(1, 3, 16, dtype=torch.float64) * 3)
    assert (curved.diff(dim=-1) >= 0).all()


def test_the_variant_starts_as_the_published_generator():
    """Same seed: the published layers draw the same weights, and the zero-initialised curve
    is the identity, so the output is the published generator's exactly."""
    networks = []
    for name in (VARIANT, "uegan-charbonnier"):
        torch.manual_seed(0)
        generator = Generator(get_variant(name).generator_config(8))
        init_orthogonal(generator)
        networks.append(generator)
    curve, plain = networks
    ref = plain.state_dict()
    assert all(torch.equal(curve.state_dict()[k], v) for k, v in ref.items())
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        assert torch.equal(curve(x), plain(x))
    # the published init leaves the curve's MLP at PyTorch's default scale, not gain 0.02
    assert curve.curve.mlp[0].weight.std() > 0.05
    assert torch.count_nonzero(curve.curve.mlp[-1].weight) == 0


def test_the_curve_sees_the_image_and_learns():
    torch.manual_seed(0)
    generator = Generator(get_variant(VARIANT).generator_config(8))
    init_orthogonal(generator)
    dark = torch.rand(2, 3, 64, 64) * 0.6 - 1
    loss = generator(dark).mean()
    loss.backward()
    assert generator.curve.mlp[-1].weight.grad.abs().max() > 0
    _randomise_curve(generator)
    with torch.no_grad():
        bright = torch.rand(1, 3, 64, 64) * 0.6 + 0.4
        a, b = generator.curve.logits(dark[:1]), generator.curve.logits(bright)
    assert (a - b).abs().max() > 1e-3  # different photos, different curves


def test_variant_is_listed_and_its_files_round_trip(tmp_path):
    variant = get_variant(VARIANT)
    config = variant.generator_config(8)
    assert config.curve_knots == 16 and variant.identity_criterion == "charbonnier"
    assert variant_for(config) == VARIANT
    assert config.to_dict() == {"conv_dim": 8, "se_after_ga5": False, "curve_knots": 16}
    assert "curve_knots" not in get_variant("uegan").generator_config(8).to_dict()
    with pytest.raises(ValueError, match="curve_knots"):
        GeneratorConfig(conv_dim=8, curve_knots=1)
    torch.manual_seed(0)
    generator = Generator(config)
    _randomise_curve(generator)
    path = tmp_path / "g.safetensors"
    save_generator(path, generator, variant=VARIANT)
    loaded = load_generator(path).generator
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), generator.eval()(x))


def test_tiled_forward_uses_the_whole_image_curve():
    torch.manual_seed(1)
    generator = Generator(get_variant(VARIANT).generator_config(8)).eval()
    _randomise_curve(generator)
    x = torch.rand(1, 3, 128, 176) * 1.2 - 1
    with torch.no_grad():
        whole = generator(x)
        # the curve moves the output far more than the tiling tolerance
        assert (generator.curve(x) - x).abs().max() > 0.05
    assert (tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-5
    assert tiling_matches(generator)


def test_global_curve_module_alone():
    module = GlobalCurve(knots=4)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(module(x), x, atol=1e-6)


def test_curve_only_generator_has_no_unet_and_tiles():
    config = get_variant("uegan-curve").generator_config(8)
    assert not config.local_residual and config.curve_knots == 16
    assert variant_for(config) == "uegan-curve"
    torch.manual_seed(0)
    generator = Generator(config).eval()
    names = {name.split(".")[0] for name in generator.state_dict()}
    assert names == {"curve"}  # nothing else: no dead U-Net weights in files or under DDP
    with pytest.raises(ValueError, match="curve-only"):
        GeneratorConfig(conv_dim=8, curve_knots=16, local_residual=False, se_after_ga5=True)
    with pytest.raises(ValueError, match="curve-only"):
        GeneratorConfig(conv_dim=8, local_residual=False)
    _randomise_curve(generator)
    # dark on the left, bright on the right: a corner tile's statistics are not the image's
    ramp = torch.linspace(-1, 0.8, 160).view(1, 1, 1, 160)
    x = (ramp + torch.rand(1, 3, 96, 160) * 0.2).clamp(-1, 1)
    with torch.no_grad():
        whole = generator(x)
        # pointwise: the output is the curves of the whole image, applied to each pixel
        assert torch.allclose(whole, generator.curve(x), atol=0)
    tiled = tiled_forward(generator, x, tile=32)
    assert (tiled - whole).abs().max() <= 1e-6
    # statistics of one tile alone give other curves: the tiled pass must use the whole image's
    with torch.no_grad():
        corner = generator.curve(x[:, :, :32, :32])
    assert (corner - whole[:, :, :32, :32]).abs().max() > 1e-2
    assert tiling_matches(generator)
