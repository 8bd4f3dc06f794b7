"""The two inert modules of the published model (spec, "Findings"), as properties on random
weights and inputs, in float64 so that "zero up to rounding" (1e-15) and "small" are far apart.

References are written out here (InstanceNorm of the local convolution, a forward hook that
halves ga5's output), never taken from the code under test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _reference_ops import instance_norm, randomize

from uegan.models import Generator, GeneratorConfig
from uegan.models.layers import GlobalAttention
from uegan.variants import get_variant

DTYPE = torch.float64


def _inputs(shape, seed: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=rng, dtype=DTYPE) * 0.7 + \
        torch.randn(shape[0], shape[1], 1, 1, generator=rng, dtype=DTYPE)


@pytest.mark.parametrize("channels,seed", [(8, 0), (32, 1), (128, 2)])
def test_gam_output_ignores_its_global_weights(channels, seed):
    gam = GlobalAttention(channels).to(DTYPE)
    randomize(gam, seed)
    x = _inputs((3, channels, 6, 5), seed)
    with torch.no_grad():
        before = gam(x)
        # written-out reference: InstanceNorm of the local half of fuse, nothing else
        local = torch.einsum("oc,nchw->nohw", gam.fuse.weight[:, :channels, 0, 0], x)
        assert (before - instance_norm(local)).abs().max() < 1e-10
        # new global weights: reduce, expand, the global half of fuse and its bias
        rng = torch.Generator().manual_seed(100 + seed)
        for p in (gam.reduce.weight, gam.expand.weight, gam.fuse.bias):
            p.copy_(-3 * p + torch.randn(p.shape, generator=rng, dtype=DTYPE))
        gam.fuse.weight[:, channels:] = torch.randn(channels, channels, 1, 1, generator=rng, dtype=DTYPE)
        after = gam(x)
    assert before.abs().max() > 0.5
    assert (after - before).abs().max() < 1e-9  # rounding: the constant cancelled can be O(10)


@pytest.mark.parametrize("channels,seed", [(16, 3), (64, 4)])
def test_gam_global_weights_get_zero_gradient(channels, seed):
    gam = GlobalAttention(channels).to(DTYPE)
    randomize(gam, seed)
    x = _inputs((2, channels, 4, 4), seed)
    direction = _inputs((2, channels, 4, 4), seed + 50)
    (gam(x) * direction).sum().backward()
    dead = [gam.reduce.weight.grad, gam.expand.weight.grad, gam.fuse.bias.grad,
            gam.fuse.weight.grad[:, channels:]]
    live = gam.fuse.weight.grad[:, :channels]
    assert live.abs().max() > 1e-2
    for grad in dead:
        assert grad.abs().max() < 1e-12 * live.abs().max()


def test_whole_published_generator_global_branches_get_zero_gradient():
    generator = Generator(GeneratorConfig(conv_dim=8)).to(DTYPE)
    randomize(generator, 5)
    x = torch.tanh(_inputs((2, 3, 32, 32), 5))
    (generator(x) * _inputs((2, 3, 32, 32), 6)).sum().backward()
    largest = max(p.grad.abs().max() for p in generator.parameters())
    for k in range(1, 6):
        gam = getattr(generator, f"ga{k}")
        c = gam.channels
        for grad in (gam.reduce.weight.grad, gam.expand.weight.grad, gam.fuse.bias.grad,
                     gam.fuse.weight.grad[:, c:]):
            assert grad.abs().max() < 1e-12 * largest, k
        assert gam.fuse.weight.grad[:, :c].abs().max() > 1e-6 * largest, k


def _shared_weights(source: Generator, target: Generator) -> None:
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("se.")}
    target.load_state_dict(state)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_se_variant_equals_no_se_with_ga5_halved(seed):
    with_se = Generator(get_variant("uegan-charbonnier-se").generator_config(8)).to(DTYPE)
    randomize(with_se, seed)
    plain = Generator(get_variant("uegan-charbonnier").generator_config(8)).to(DTYPE)
    _shared_weights(with_se, plain)
    assert plain.se is None
    plain.ga5.register_forward_hook(lambda module, args, output: output * 0.5)
    x = torch.tanh(_inputs((2, 3, 32, 48), seed))
    with torch.no_grad():
        out_se = with_se(x)
        out_half = plain(x)
        # the SE excitation itself, written out: sigmoid(fc2(relu(fc1(mean)))) == 0.5
        b = with_se.ga5(with_se.enc5(with_se.enc4(with_se.enc3(with_se.enc2(with_se.enc1(x))))))
        hidden = F.relu(b.mean(dim=(2, 3)) @ with_se.se.fc1.weight.t())
        excitation = torch.sigmoid(hidden @ with_se.se.fc2.weight.t())
    assert (excitation - 0.5).abs().max() < 1e-12
    assert (out_se - out_half).abs().max() < 1e-12
    # and the halving matters: without it the output differs
    plain_unhooked = Generator(get_variant("uegan-charbonnier").generator_config(8)).to(DTYPE)
    _shared_weights(with_se, plain_unhooked)
    with torch.no_grad():
        assert (plain_unhooked(x) - out_se).abs().max() > 1e-3


def test_seed_se_weights_get_zero_gradient():
    generator = Generator(get_variant("uegan-charbonnier-se").generator_config(8)).to(DTYPE)
    randomize(generator, 7)
    x = torch.tanh(_inputs((2, 3, 32, 32), 7))
    (generator(x) * _inputs((2, 3, 32, 32), 8)).sum().backward()
    largest = max(p.grad.abs().max() for p in generator.parameters())
    assert generator.se.fc1.weight.grad.abs().max() < 1e-12 * largest
    assert generator.se.fc2.weight.grad.abs().max() < 1e-12 * largest


def test_half_variant_computes_what_the_seed_se_variant_computes():
    with_se = Generator(get_variant("uegan-charbonnier-se").generator_config(8)).to(DTYPE)
    randomize(with_se, 9)
    half = Generator(get_variant("uegan-charbonnier-half").generator_config(8)).to(DTYPE)
    _shared_weights(with_se, half)
    assert set(half.state_dict()) == {k for k in with_se.state_dict() if not k.startswith("se.")}
    x = torch.tanh(_inputs((2, 3, 32, 32), 9))
    with torch.no_grad():
        assert (with_se(x) - half(x)).abs().max() < 1e-12
