"""The study's variants: the published three unchanged, the new ones doing what they say.

- uegan-charbonnier-gam-mod: the GAM's global vector scales and shifts the normalised features;
  it starts as the published GAM (also after the published orthogonal init) and its global
  parameters get gradient and change the output.
- uegan-charbonnier-se-pre: SE on enc5, before ga5: its weights get gradient, its excitation is
  not a constant.
- uegan-charbonnier-half: no SE, ga5 x 0.5 (its equality with the published study's SE variant is in
  test_inertness.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _reference_ops import instance_norm, randomize

from uegan.checkpoints import TRAIN_FORMAT, load_generator, save_generator
from uegan.errors import UserError
from uegan.losses import FidelityLoss
from uegan.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, VGG19Features
from uegan.models.attention import ModulatedGlobalAttention
from uegan.models.init import init_orthogonal
from uegan.models.published import generator_key_table, generator_to_published
from uegan.training.step import ImagePool, make_optimizers, train_step
from uegan.variants import VARIANTS, Variant, get_variant, variant_for

DTYPE = torch.float64
NEW = ("uegan-charbonnier-half", "uegan-charbonnier-gam-mod", "uegan-charbonnier-se-pre")
MODULATION = ("scale_weight", "scale_bias", "shift_weight", "shift_bias")


def _images(shape, seed: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(shape, generator=rng, dtype=DTYPE)
                      + torch.randn(shape[0], shape[1], 1, 1, generator=rng, dtype=DTYPE))


# --- the published three stay as they were ----------------------------------------------------

@pytest.mark.parametrize("name,se", [("uegan", False), ("uegan-charbonnier", False),
                                     ("uegan-charbonnier-se", True)])
def test_published_variants_are_unchanged(name, se):
    variant = get_variant(name)
    config = variant.generator_config(32)
    assert config == GeneratorConfig(conv_dim=32, se_after_ga5=se)
    assert config.to_dict() == {"conv_dim": 32, "se_after_ga5": se}  # files look as before
    assert set(Generator(variant.generator_config(8)).state_dict()) == set(generator_key_table(se).values())
    assert variant_for(config) == ("uegan-charbonnier-se" if se else "uegan")


def test_new_variants_are_listed_and_recognised():
    for name in NEW:
        variant = get_variant(name)
        assert variant.published is None and variant.identity_criterion == "charbonnier"
        config = variant.generator_config(16)
        assert variant_for(config) == name
        assert GeneratorConfig(**config.to_dict()) == config
    assert get_variant("uegan-charbonnier-half").generator_config().ga5_scale == 0.5
    assert get_variant("uegan-charbonnier-gam-mod").generator_config().gam == "modulated"
    assert get_variant("uegan-charbonnier-se-pre").generator_config().se_before_ga5


def test_bad_generator_options_are_rejected():
    with pytest.raises(ValueError, match="unknown generator options"):
        Variant("x", "l1", False, "x", generator_options={"gam_kind": "modulated"})
    with pytest.raises(ValueError, match="gam must be one of"):
        GeneratorConfig(gam="film")
    with pytest.raises(ValueError, match="ga5_scale"):
        GeneratorConfig(ga5_scale=0.0)


def test_new_architectures_have_no_published_key_table():
    generator = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8))
    with pytest.raises(UserError, match="not a UEGAN generator"):
        generator_to_published(generator.state_dict())


# --- modulated GAM ---------------------------------------------------------------------------

def test_modulated_gam_starts_as_the_published_gam_output():
    gam = ModulatedGlobalAttention(16).to(DTYPE)
    x = _images((2, 16, 5, 7), 0)
    with torch.no_grad():
        out = gam(x)
        expected = instance_norm(torch.einsum("oc,nchw->nohw", gam.fuse.weight[:, :, 0, 0], x))
    assert (out - expected).abs().max() < 1e-12
    assert all(torch.count_nonzero(getattr(gam, name)) == 0 for name in MODULATION)


def test_modulated_generator_starts_as_the_published_generator_with_the_same_local_weights():
    modulated = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8)).to(DTYPE)
    published = Generator(get_variant("uegan-charbonnier").generator_config(8)).to(DTYPE)
    randomize(published, 1)
    state = {}
    for key, value in modulated.state_dict().items():
        if key.endswith(MODULATION):
            state[key] = value  # zero: the identity
        elif key.endswith("fuse.weight"):
            state[key] = published.state_dict()[key][:, :value.shape[1]]  # the local half
        else:
            state[key] = published.state_dict()[key]
    modulated.load_state_dict(state)
    x = _images((2, 3, 32, 32), 1)
    with torch.no_grad():
        assert (modulated(x) - published(x)).abs().max() < 1e-10


def test_orthogonal_init_keeps_the_modulation_at_the_identity():
    generator = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8))
    with torch.no_grad():
        for k in range(1, 6):
            getattr(generator, f"ga{k}").scale_weight.fill_(1.0)  # as if loaded from elsewhere
    for module in generator.modules():
        if isinstance(module, ModulatedGlobalAttention):
            module.reset_modulation()
    init_orthogonal(generator)
    for k in range(1, 6):
        gam = getattr(generator, f"ga{k}")
        for name in MODULATION:
            assert torch.count_nonzero(getattr(gam, name)) == 0, (k, name)
        w = gam.fuse.weight.flatten(1)
        assert torch.allclose(w @ w.t(), torch.eye(w.shape[0]) * 0.02 ** 2, atol=1e-7)


def test_modulated_gam_global_parameters_get_gradient_from_the_start():
    generator = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8)).to(DTYPE)
    x = _images((2, 3, 32, 32), 2)
    (generator(x) * _images((2, 3, 32, 32), 3)).sum().backward()
    for k in range(1, 6):
        gam = getattr(generator, f"ga{k}")
        assert gam.scale_bias.grad.abs().max() > 1e-8, k
        assert gam.shift_bias.grad.abs().max() > 1e-8, k
    # the weights read the global vector: non-zero wherever it is (ga5 has 16 hidden units)
    ga5 = generator.ga5
    with torch.no_grad():
        g = ga5.global_vector(generator.enc5(generator.enc4(generator.enc3(generator.enc2(generator.enc1(x))))))
    assert g.abs().max() > 0
    assert ga5.scale_weight.grad.abs().max() > 1e-8
    assert ga5.shift_weight.grad.abs().max() > 1e-8


def test_modulated_gam_global_branch_changes_the_output_and_gets_gradient():
    gam = ModulatedGlobalAttention(32).to(DTYPE)
    randomize(gam, 4)  # modulation away from zero, as after training steps
    x = _images((3, 32, 6, 6), 4)
    direction = _images((3, 32, 6, 6), 5)
    (gam(x) * direction).sum().backward()
    for p in (gam.reduce.weight, gam.expand.weight, *(getattr(gam, n) for n in MODULATION)):
        assert p.grad.abs().max() > 1e-6
    with torch.no_grad():
        before = gam(x)
        gam.expand.weight.mul_(-3)
        after = gam(x)
    assert (after - before).abs().max() > 1e-2


def test_modulated_gam_trains_its_global_branch_in_real_training_steps(golden_vgg_state):
    # PyTorch's default init: under the published orthogonal init (gain 0.02) every gradient at
    # ga5 is ~1e-31 in the first steps, local weights included (README), far below Adam's eps
    torch.manual_seed(0)
    generator = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8))
    discriminator = Discriminator(DiscriminatorConfig(conv_dim=8))
    vgg = VGG19Features()
    vgg.load_state_dict(golden_vgg_state)
    opt_g, opt_d = make_optimizers(generator, discriminator)
    pool = ImagePool(4)
    low, high = _images((1, 3, 96, 96), 6).float(), _images((1, 3, 96, 96), 7).float()
    train_step(generator, discriminator, FidelityLoss(vgg), pool, opt_g, opt_d, low, high, "charbonnier")
    gams = [getattr(generator, f"ga{k}") for k in range(1, 6)]
    # first step: only the modulation moves (the identity start shields reduce / expand)
    for gam in gams:
        assert gam.reduce.weight.grad is None or torch.count_nonzero(gam.reduce.weight.grad) == 0
        assert all(torch.count_nonzero(getattr(gam, n)) > 0 for n in MODULATION)
    train_step(generator, discriminator, FidelityLoss(vgg), pool, opt_g, opt_d, low, high, "charbonnier")
    for k, gam in enumerate(gams, 1):  # then the global branch of every GAM learns
        assert gam.reduce.weight.grad.abs().max() > 1e-12, k
        assert gam.expand.weight.grad.abs().max() > 1e-12, k


# --- SE before ga5 ---------------------------------------------------------------------------

def test_se_before_ga5_gets_gradient_and_changes_the_output():
    generator = Generator(get_variant("uegan-charbonnier-se-pre").generator_config(8)).to(DTYPE)
    assert generator.se is None and generator.se_pre is not None
    randomize(generator, 8)
    x = _images((2, 3, 32, 32), 8)
    (generator(x) * _images((2, 3, 32, 32), 9)).sum().backward()
    largest = max(p.grad.abs().max() for p in generator.parameters())
    assert generator.se_pre.fc1.weight.grad.abs().max() > 1e-6 * largest
    assert generator.se_pre.fc2.weight.grad.abs().max() > 1e-6 * largest
    e5 = generator.enc5(generator.enc4(generator.enc3(generator.enc2(generator.enc1(x)))))
    with torch.no_grad():
        excitation = torch.sigmoid(F.relu(e5.mean(dim=(2, 3)) @ generator.se_pre.fc1.weight.t())
                                   @ generator.se_pre.fc2.weight.t())
        assert (excitation - 0.5).abs().max() > 1e-2  # real channel attention, not a constant
        before = generator(x)
        generator.se_pre.fc2.weight.mul_(-3)
        assert (generator(x) - before).abs().max() > 1e-3


def test_half_variant_scales_ga5_by_one_half():
    half = Generator(get_variant("uegan-charbonnier-half").generator_config(8)).to(DTYPE)
    plain = Generator(get_variant("uegan-charbonnier").generator_config(8)).to(DTYPE)
    randomize(plain, 10)
    half.load_state_dict(plain.state_dict())
    plain.ga5.register_forward_hook(lambda module, args, output: output / 2)
    x = _images((1, 3, 32, 32), 10)
    with torch.no_grad():
        assert (half(x) - plain(x)).abs().max() < 1e-12


# --- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_new_variants_round_trip_through_the_export_format(tmp_path, name):
    generator = Generator(get_variant(name).generator_config(8))
    randomize(generator, 11)
    path = save_generator(tmp_path / f"{name}.safetensors", generator, name)
    loaded = load_generator(path)
    assert loaded.variant == name and loaded.source_format == "export"
    assert loaded.generator.config == generator.config
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[key], value), key


def test_new_variant_training_checkpoint_is_read(tmp_path):
    generator = Generator(get_variant("uegan-charbonnier-gam-mod").generator_config(8))
    path = tmp_path / "step_1.pt"
    torch.save({"format": TRAIN_FORMAT, "version": 1, "variant": "uegan-charbonnier-gam-mod",
                "generator_config": generator.config.to_dict(), "G": generator.state_dict()}, path)
    loaded = load_generator(path)
    assert loaded.generator.config.gam == "modulated"


def test_every_variant_builds_and_runs():
    x = torch.zeros(1, 3, 32, 32)
    for variant in VARIANTS.values():
        with torch.no_grad():
            assert Generator(variant.generator_config(8)).eval()(x).shape == x.shape
