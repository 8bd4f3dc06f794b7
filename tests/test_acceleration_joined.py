"""Joined calls of a training step (``StepOptions.batch_d_calls``, ``batch_d_in_g_step``,
``batch_g_calls``): one call on the joined batch gives what the published calls one by one give.

References: the golden tensors of the published code (../shared/golden: D's two train-mode calls
and the u / v state after them; the two golden training steps) and the calls one by one, run
here; tolerances as in tests/test_acceleration.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import load_golden
from test_acceleration import _assert_matches_eager_here_and_golden
from uegan.models import Discriminator, DiscriminatorConfig
from uegan.models.fast import use_output_scaled_spectral_norm
from uegan.models.published import discriminator_from_published, discriminator_to_published
from uegan.training.step import StepOptions, discriminator_calls


def _published_discriminator(ref: dict) -> Discriminator:
    config, state = discriminator_from_published(ref["state_dict_initial"])
    discriminator = Discriminator(config)
    discriminator.load_state_dict(state)
    return discriminator.train()


@pytest.mark.parametrize("output_scaled", [False, True])
def test_joined_call_runs_one_power_iteration_per_published_call(output_scaled):
    """The golden file's two train-mode calls, joined into one: the same scores per call and
    the u / v state the published code has after two calls (one iteration would not match)."""
    ref = load_golden("discriminator_forward.pt")
    discriminator = _published_discriminator(ref)
    if output_scaled:
        use_output_scaled_spectral_norm(discriminator)
    inputs = list(ref["train_inputs"])
    with torch.no_grad():
        per_call = discriminator_calls(discriminator, inputs, joined=True)
    for outputs, expected in zip(per_call, ref["train_outputs"], strict=True):
        assert max((o - e).abs().max().item() for o, e in zip(outputs, expected, strict=True)) <= 1e-5
    after = discriminator_to_published(discriminator.state_dict())
    for key, value in ref["state_dict_after_two_train_calls"].items():
        assert torch.allclose(after[key], value, atol=1e-6), key


def test_joined_call_gives_the_gradients_of_the_calls_one_by_one():
    """Three calls (the D step's) with different weights on each call's loss: D's weight
    gradients and the gradient to each input match the calls one by one within 1e-5 relative."""
    torch.manual_seed(0)
    reference = Discriminator(DiscriminatorConfig(conv_dim=8)).train()
    use_output_scaled_spectral_norm(reference)
    joined = copy.deepcopy(reference)
    inputs = [torch.rand(n, 3, 96, 96, requires_grad=True) for n in (2, 1, 2)]
    grads = []
    for model, join in ((reference, False), (joined, True)):
        scores = discriminator_calls(model, inputs, joined=join)
        loss = sum((i + 1) * s.square().mean() for i, call in enumerate(scores) for s in call)
        wanted = list(model.parameters()) + inputs
        grads.append(torch.autograd.grad(loss, wanted))
    for mine, theirs in zip(grads[1], grads[0], strict=True):
        assert (mine - theirs).abs().max().item() <= 1e-5 * theirs.abs().max().item()
    for mine, theirs in zip(joined.buffers(), reference.buffers(), strict=True):
        assert torch.allclose(mine, theirs, atol=1e-7)


def test_calls_must_add_up_to_the_batch():
    discriminator = Discriminator(DiscriminatorConfig(conv_dim=8))
    with pytest.raises(ValueError, match="add up"):
        discriminator(torch.rand(3, 3, 96, 96), calls=[2, 2])


def test_joined_calls_reproduce_two_published_steps():
    """Every joined call on top of ``StepOptions.fast()``: the golden two steps (losses within
    1e-4, parameter updates within the golden cosine bounds) and the eager step run here."""
    _assert_matches_eager_here_and_golden(StepOptions.fast(
        batch_d_calls=True, batch_d_in_g_step=True, batch_g_calls=True))
