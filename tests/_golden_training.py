"""The set-up of the published code's two golden training steps (../shared/golden), shared by
the tests of the step (test_train_step.py) and of its speed-ups (test_acceleration.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from conftest import load_golden
from uegan.losses import FidelityLoss
from uegan.models import Discriminator, Generator, VGG19Features
from uegan.models.published import discriminator_from_published, generator_from_published
from uegan.training.step import ImagePool, LossWeights, OptimizerSettings, make_optimizers


@dataclass
class GoldenTraining:
    ref: dict[str, Any]
    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    weights: LossWeights
    pool: ImagePool

    @property
    def settings(self) -> dict[str, Any]:
        return self.ref["settings"]


def golden_training(init: str, **optimizer_kwargs: Any) -> GoldenTraining:
    """G and D at the published initial weights (train mode), the published optimisers, loss
    weights and image pool of ``train_two_steps_<init>.pt``."""
    ref = load_golden(f"train_two_steps_{init}.pt")
    settings = ref["settings"]
    g_config, g_state = generator_from_published(ref["G_initial"])
    d_config, d_state = discriminator_from_published(ref["D_initial"])
    generator, discriminator = Generator(g_config), Discriminator(d_config)
    generator.load_state_dict(g_state)
    discriminator.load_state_dict(d_state)
    generator.train()
    discriminator.train()
    opt_g, opt_d = make_optimizers(generator, discriminator, OptimizerSettings(
        g_lr=settings["g_lr"], d_lr=settings["d_lr"], beta1=settings["betas"][0],
        beta2=settings["betas"][1], weight_decay=settings["weight_decay"]), **optimizer_kwargs)
    weights = LossWeights(settings["lambda_adv"], settings["lambda_percep"], settings["lambda_idt"])
    return GoldenTraining(ref, generator, discriminator, opt_g, opt_d, weights,
                          ImagePool(settings["pool_size"]))


def golden_fidelity_loss() -> FidelityLoss:
    """The fidelity loss on the golden random VGG19 (float32)."""
    vgg = VGG19Features()
    vgg.load_state_dict({k: v.float() for k, v in load_golden("vgg19_random_to_relu5_1.pt").items()})
    return FidelityLoss(vgg)
