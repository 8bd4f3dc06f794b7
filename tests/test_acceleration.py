"""The optional speed-ups (uegan.training.step.StepOptions, uegan.models.fast, uegan.runtime) keep the published numerics.

References are the golden tensors of the published code (../shared/golden), with the golden
tolerances: the generator forward within 1e-5, two training steps' losses within 1e-4 relative
and their parameter updates as in tests/test_train_step.py. Timings are in benchmarks/, not here.

The two tests that run ``torch.compile`` are marked ``compile`` (``-m "not compile"`` leaves
them out). The compiled generator runs by default: about a minute on 2 CPU cores with a cold
compile cache, 10 s with a warm one (the cache is kept under
``uegan.runtime.default_compile_cache()``). The compiled training steps (G and D: five
graphs, forward and backward) take about four minutes on a cold cache, so they run only with
``UEGAN_SLOW_TESTS=1`` (40 s on a warm cache).
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from _golden_training import golden_fidelity_loss, golden_training
from conftest import load_golden
from test_train_step import LOSS_NAMES, _compare_deltas
from uegan.models.fast import ConvFirstUpsample, LocalOnlyGlobalAttention, OutputScaledDBlock, restore_attention, restore_dblocks, restore_upsample, skip_inert_attention, use_conv_first_upsample, use_output_scaled_spectral_norm
from uegan.inference import InferenceAcceleration, prepare_generator_for_inference
from uegan.runtime import autocast, channels_last_input, grad_scaler
from uegan.training.step import mixed_precision
from uegan.losses import FidelityLoss
from uegan.models import (Discriminator, DiscriminatorConfig, Generator, GeneratorConfig,
                          VGG19Features)
from uegan.models.layers import GlobalAttention, Upsample
from uegan.models.published import (discriminator_from_published, discriminator_to_published,
                             generator_from_published, generator_to_published)
from uegan.training.step import (ImagePool, StepOptions, apply_step_options, make_optimizers,
                                 train_step)

needs_compiler = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("c++") is None
                                    and shutil.which("clang") is None,
                                    reason="torch.compile on CPU needs a C++ compiler")


def _golden_generator():
    ref = load_golden("generator_forward.pt")
    config, state = generator_from_published(ref["state_dict"])
    generator = Generator(config)
    generator.load_state_dict(state)
    return ref, generator.eval()


@pytest.mark.parametrize("options", [
    InferenceAcceleration(conv_first_upsample=True),
    InferenceAcceleration(skip_inert_gam=True),
    InferenceAcceleration(channels_last=True),
    InferenceAcceleration(conv_first_upsample=True, skip_inert_gam=True, channels_last=True),
], ids=["conv_first_upsample", "skip_inert_gam", "channels_last", "all_eager"])
def test_eager_inference_options_match_published_forward(options):
    ref, generator = _golden_generator()
    model = prepare_generator_for_inference(generator, options)
    with torch.inference_mode():
        out = model(ref["input"])
    assert out.shape == ref["output"].shape
    assert out.is_contiguous()
    assert (out - ref["output"]).abs().max().item() <= 1e-5


def test_module_swaps_keep_parameters_and_keys_and_undo():
    generator = Generator(GeneratorConfig(conv_dim=8))
    keys = list(generator.state_dict())
    params = [id(p) for p in generator.parameters()]
    assert use_conv_first_upsample(generator) == 4
    assert skip_inert_attention(generator) == 5
    assert isinstance(generator.up1, ConvFirstUpsample) and isinstance(generator.ga1, LocalOnlyGlobalAttention)
    assert list(generator.state_dict()) == keys
    assert [id(p) for p in generator.parameters()] == params
    assert restore_upsample(generator) == 4 and restore_attention(generator) == 5
    assert type(generator.up1) is Upsample and type(generator.ga1) is GlobalAttention


def test_conv_first_upsample_commutes_with_bias_and_corners():
    """1x1 conv and bilinear x2 (align_corners) commute: checked against the formula written
    out: every output pixel of the bilinear x2 with align_corners is a convex combination."""
    torch.manual_seed(0)
    up = Upsample(4, 3)
    x = torch.randn(2, 4, 5, 7)
    expected = up(x)
    use_conv_first_upsample(up)
    assert (up(x) - expected).abs().max().item() <= 1e-5
    # corners of an align_corners upsampling are copies of the input corners
    conv = up.conv(x)
    assert torch.allclose(up(x)[..., 0, 0], conv[..., 0, 0], atol=1e-6)
    assert torch.allclose(up(x)[..., -1, -1], conv[..., -1, -1], atol=1e-6)


def test_precision_helpers():
    assert grad_scaler("fp32") is None and grad_scaler("bf16") is None
    assert isinstance(grad_scaler("fp16"), torch.amp.GradScaler)
    with pytest.raises(ValueError):
        autocast("fp8")
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with autocast("bf16", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert conv(x).dtype == torch.float32
    amp = mixed_precision("bf16", "cpu")
    assert amp.dtype == torch.bfloat16 and amp.scaler is None
    assert channels_last_input(x).is_contiguous(memory_format=torch.channels_last)
    assert channels_last_input(x, enabled=False) is x


class ConvOutputDtypes:
    """Records the dtype of every Conv2d output computed while it is active (all modules)."""

    def __enter__(self):
        self.dtypes: list[torch.dtype] = []

        def hook(module, _inputs, output):
            if isinstance(module, torch.nn.Conv2d):
                self.dtypes.append(output.dtype)

        self._handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def test_bf16_inference_runs_in_bf16_within_3e3_and_returns_float32():
    ref, generator = _golden_generator()
    model = prepare_generator_for_inference(generator, InferenceAcceleration(precision="bf16"))
    with torch.inference_mode(), ConvOutputDtypes() as seen:
        out = model(ref["input"])
    assert out.dtype == torch.float32
    # every convolution of the forward ran in bfloat16
    assert len(seen.dtypes) >= 20 and set(seen.dtypes) == {torch.bfloat16}
    # README: outputs within 3e-3 of fp32 (images in [0, 1]: half the [-1, 1] difference);
    # measured 8.3e-4. And not fp32 in disguise: fp32 is 1.2e-7 from the reference.
    difference = ((out - ref["output"]) / 2).abs().max().item()
    assert 1e-5 < difference <= 3e-3, difference


def test_fp32_inference_stays_fp32():
    ref, generator = _golden_generator()
    model = prepare_generator_for_inference(generator, InferenceAcceleration(channels_last=True))
    with torch.inference_mode(), ConvOutputDtypes() as seen:
        model(ref["input"])
    assert seen.dtypes and set(seen.dtypes) == {torch.float32}


def test_output_scaled_spectral_norm_matches_published_discriminator():
    """Train-mode calls (one power iteration each), the u/v state after them, and eval mode."""
    ref = load_golden("discriminator_forward.pt")
    config, state = discriminator_from_published(ref["state_dict_initial"])
    discriminator = Discriminator(config)
    discriminator.load_state_dict(state)
    assert use_output_scaled_spectral_norm(discriminator) == 5
    assert isinstance(discriminator.blocks[0], OutputScaledDBlock)
    discriminator.train()
    for inputs, expected in zip(ref["train_inputs"], ref["train_outputs"]):
        with torch.no_grad():
            outputs = discriminator(inputs)
        assert max((o - e).abs().max().item() for o, e in zip(outputs, expected, strict=True)) <= 1e-5
    after = discriminator_to_published(discriminator.state_dict())
    for key, value in ref["state_dict_after_two_train_calls"].items():
        assert torch.allclose(after[key], value, atol=1e-6), key
    discriminator.load_state_dict(discriminator_from_published(ref["state_dict_after_two_train_calls"])[1])
    discriminator.eval()
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    with torch.no_grad():
        outputs = discriminator(ref["eval_input"])
    assert max((o - e).abs().max().item() for o, e in zip(outputs, ref["eval_output"], strict=True)) <= 1e-5
    assert all(torch.equal(v, before[k]) for k, v in discriminator.state_dict().items())
    assert restore_dblocks(discriminator) == 5


# ---------------------------------------------------------------------------------------------
# training


def _run_golden_steps(init: str, options: StepOptions):
    """Run the two golden training steps with ``options``; returns (reference, G, D, losses)."""
    golden = golden_training(init, fused=options.fused)
    ref, settings, generator, discriminator = golden.ref, golden.settings, golden.generator, golden.discriminator
    fidelity = golden_fidelity_loss()
    apply_step_options(generator, discriminator, fidelity, options)
    losses = []
    for batch in ref["batches"]:
        low = channels_last_input(batch["low_quality"], options.channels_last)
        high = channels_last_input(batch["high_quality"], options.channels_last)
        losses.append(train_step(generator, discriminator, fidelity, golden.pool, golden.opt_g,
                                 golden.opt_d, low, high, "l1", golden.weights,
                                 adversarial_input=settings["adv_input"],
                                 options=options).as_floats())
    return ref, generator, discriminator, losses


# Bounds of the accelerated step's parameter updates (two Adam steps). Adam's first steps move
# each element by about lr * sign(gradient), so an element whose gradient is of the order of
# its rounding error moves by +-lr in a direction set by rounding: summation order (another
# CPU's kernels, NHWC, the conv-first upsampling) turns into update differences far above
# rounding. On the machine this was written on, the eager step with its inputs changed by one
# unit in the last place moved the worst per-tensor cosine down to 0.989 and the aggregate up to
# 0.09; the published code on an Intel Xeon (AVX-512, AMX) against the golden file made on an
# AMD CPU, 0.999 and 0.028; this step's speed-ups there, 0.990 and 0.066. The README's 0.99 thus
# sits inside rounding noise. What a real deviation does is far larger: dropping the identity
# term gives 0.81 and 0.26, and the losses (compared at 1e-4, not amplified by Adam) catch a
# term scaled by a few per cent.
SAME_MACHINE_WORST_COSINE = 0.98   # against the eager step, run in the same test
SAME_MACHINE_AGGREGATE = 0.1
GOLDEN_WORST_COSINE = 0.97         # against the golden file (another CPU: its noise adds)
GOLDEN_AGGREGATE = 0.12


def _assert_updates_close(initial, after_ref, after_mine, worst_bound, aggregate_bound, what):
    worst, aggregate = _compare_deltas(initial, after_ref, after_mine, 1e-10)
    assert worst >= worst_bound and aggregate <= aggregate_bound, (what, worst, aggregate)


def _assert_matches_eager_here_and_golden(options: StepOptions) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The two golden steps with ``options`` against the eager published-order step run here
    (same machine, same test) and, with a looser bound, against the golden file (bounds: the
    comment above); returns the trained G and D."""
    ref, generator, discriminator, losses = _run_golden_steps("kaiming", options)
    _, eager_g, eager_d, eager_losses = _run_golden_steps("kaiming", StepOptions())
    mine_g = generator_to_published(generator.state_dict())
    mine_d = discriminator_to_published(discriminator.state_dict())
    for mine, eager, expected in zip(losses, eager_losses, ref["losses_per_step"], strict=True):
        for name, theirs in LOSS_NAMES.items():
            assert mine[name] == pytest.approx(eager[name], rel=1e-4, abs=1e-7), name
            assert mine[name] == pytest.approx(expected[theirs], rel=1e-4, abs=1e-7), name
    _assert_updates_close(ref["G_initial"], generator_to_published(eager_g.state_dict()), mine_g,
                          SAME_MACHINE_WORST_COSINE, SAME_MACHINE_AGGREGATE, "G, eager here")
    _assert_updates_close(ref["D_initial"], discriminator_to_published(eager_d.state_dict()),
                          mine_d, SAME_MACHINE_WORST_COSINE, SAME_MACHINE_AGGREGATE, "D, eager here")
    _assert_updates_close(ref["G_initial"], ref["G_after"], mine_g, GOLDEN_WORST_COSINE,
                          GOLDEN_AGGREGATE, "G, golden")
    _assert_updates_close(ref["D_initial"], ref["D_after"], mine_d, GOLDEN_WORST_COSINE,
                          GOLDEN_AGGREGATE, "D, golden")
    return generator, discriminator


def test_eager_training_options_reproduce_two_published_steps():
    """freeze_d_in_g_step, fused Adam, conv-first upsampling, output-scaled spectral norm and
    channels-last, all at once, on the kaiming case (every loss term far from zero)."""
    _, discriminator = _assert_matches_eager_here_and_golden(StepOptions(
        freeze_d_in_g_step=True, fused_adam=True, conv_first_upsample=True,
        output_scaled_spectral_norm=True, channels_last=True))
    # the frozen G step leaves D trainable afterwards
    assert all(p.requires_grad for p in discriminator.parameters())


def test_training_acceleration_is_the_step_options_under_its_former_name():
    from uegan.training.acceleration import TrainingAcceleration, accelerate_training

    assert TrainingAcceleration is StepOptions and accelerate_training is apply_step_options
    assert TrainingAcceleration.fast().step_kwargs() == {"options": StepOptions.fast()}
    assert StepOptions.fast().fused is True and StepOptions().fused is None


def test_freeze_d_in_g_step_leaves_d_gradients_of_the_d_step():
    torch.manual_seed(0)
    config = GeneratorConfig(conv_dim=8)
    generator, discriminator = Generator(config), Discriminator(DiscriminatorConfig(conv_dim=8))
    fidelity = FidelityLoss(VGG19Features())
    low, high = torch.rand(2, 1, 3, 96, 96) * 2 - 1
    grads = {}
    for freeze in (False, True):
        g, d = Generator(config), Discriminator(DiscriminatorConfig(conv_dim=8))
        g.load_state_dict(generator.state_dict())
        d.load_state_dict(discriminator.state_dict())
        opt_g, opt_d = make_optimizers(g, d)
        train_step(g, d, fidelity, ImagePool(0), opt_g, opt_d, low, high,
                   options=StepOptions(freeze_d_in_g_step=freeze))
        assert all(p.requires_grad for p in d.parameters())
        grads[freeze] = [p.grad.clone() for p in d.parameters()]
    # published: D's .grad ends up holding the G step's (discarded) gradients; frozen: the D
    # step's, which the optimiser used
    assert any(not torch.allclose(a, b) for a, b in zip(grads[False], grads[True]))


# ---------------------------------------------------------------------------------------------
# torch.compile (slow: marked)


@pytest.mark.compile
@needs_compiler
def test_compiled_generator_matches_published_forward():
    ref, generator = _golden_generator()
    model = prepare_generator_for_inference(generator, InferenceAcceleration.fast())
    with torch.inference_mode():
        out = model(ref["input"])
    assert (out - ref["output"]).abs().max().item() <= 1e-5


@pytest.mark.compile
@needs_compiler
@pytest.mark.skipif(os.environ.get("UEGAN_SLOW_TESTS") != "1",
                    reason="compiles five graphs (about 4 minutes cold): set UEGAN_SLOW_TESTS=1")
def test_compiled_training_reproduces_two_published_steps():
    """G and D compiled (VGG19 left eager: its compile doubles the time of this test), with every
    fp32 option of StepOptions.fast()."""
    _assert_matches_eager_here_and_golden(StepOptions.fast(compile=True, compile_vgg=False))


def test_enhancer_with_acceleration_matches_published_forward():
    """uegan.inference.Enhancer's ``acceleration`` option (eager fp32 rewrites + channels-last)."""
    from uegan.inference import Enhancer

    ref, generator = _golden_generator()
    enhancer = Enhancer(generator, "cpu", max_side=None, acceleration=InferenceAcceleration(
        conv_first_upsample=True, skip_inert_gam=True, channels_last=True))
    out = enhancer.generate((ref["input"] + 1) / 2)
    expected = ((ref["output"] + 1) / 2).clamp(0, 1)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 1e-5


def test_run_eagerly_calls_a_compiled_module_without_compiling_again():
    # validation of photos of every size must not compile a graph per size
    from torch._dynamo.testing import CompileCounter

    from uegan.runtime import run_eagerly

    class Block(torch.nn.Module):  # (dynamo does not trace torch.nn's own modules at top level)
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    def expected(x):
        return torch.relu(torch.nn.functional.conv2d(x, module.conv.weight, module.conv.bias, padding=1))

    torch._dynamo.reset()
    counter = CompileCounter()
    module = Block()
    module.compile(backend=counter, dynamic=False)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(module(x), expected(x))
    assert counter.frame_count == 1
    with run_eagerly():
        for size in (20, 24, 28):
            y = torch.randn(1, 3, size, size)
            torch.testing.assert_close(module(y), expected(y))
    assert counter.frame_count == 1
    module(torch.randn(1, 3, 20, 20))  # outside the block a new shape compiles again
    assert counter.frame_count == 2
    with run_eagerly(False):
        module(torch.randn(1, 3, 24, 24))
    assert counter.frame_count == 3
    torch._dynamo.reset()
