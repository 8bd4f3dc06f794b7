"""What a training run trains, built from its configuration: G and D (orthogonally
initialised, then, with ``--init-from``, loaded from the given weights), the fidelity loss, the
step options applied to them, the two Adam optimisers, the loss weights, the mixed precision and
the image pool."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from uegan.losses import FidelityLoss
from uegan.models.discriminator import Discriminator, DiscriminatorConfig
from uegan.models.generator import Generator
from uegan.models.init import init_orthogonal
from uegan.models.vgg import VGG19Features
from uegan.training.config import TrainConfig
from uegan.training.distributed import DistContext
from uegan.training.init_from import InitialWeights, apply_initial_weights
from uegan.training.step import (ImagePool, LossWeights, MixedPrecision, NoFidelity,
                                 OptimizerSettings, StepOptions, apply_step_options,
                                 make_optimizers, mixed_precision)
from uegan.variants import Variant
from uegan.weights import build_vgg19

log = logging.getLogger(__name__)


@dataclass
class TrainingNetworks:
    generator: Generator
    discriminator: Discriminator
    fidelity: nn.Module
    options: StepOptions
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    weights: LossWeights
    precision: MixedPrecision
    pool: ImagePool


def step_options(config: TrainConfig) -> StepOptions:
    """The speed-ups and runtime options of a training step that ``config`` asks for."""
    make = StepOptions.fast if config.fast_step else StepOptions
    return make(compile=config.compile, precision=config.precision, threads=config.threads)


def shared_vgg19(weights: str | None, dist: DistContext) -> VGG19Features:
    """VGG19 for the fidelity loss, built on rank 0 first (it may download the weights into the
    shared cache), then on the others from that cache; rank 0's error reaches every rank."""
    built: list[VGG19Features] = []
    dist.on_main(lambda: built.append(build_vgg19(weights)))
    return built[0] if built else build_vgg19(weights, download=False)


def build_networks(config: TrainConfig, variant: Variant, dist: DistContext,
                   vgg: VGG19Features | None = None,
                   initial: InitialWeights | None = None) -> TrainingNetworks:
    """Everything :func:`uegan.training.step.train_step` needs besides the data, on
    ``dist.device``. Call it after seeding torch: the initial weights come from its global
    generator (drawn whether or not ``initial`` replaces them, so a D that ``initial`` lacks
    is the D of a run from scratch). ``vgg``: a ready feature extractor for the fidelity loss,
    else VGG19 is built from ``config.vgg_weights`` (not when the fidelity weight is 0)."""
    device, rank = dist.device, dist.rank
    generator = Generator(variant.generator_config(config.conv_dim))
    discriminator = Discriminator(DiscriminatorConfig(config.d_conv_dim))
    init_orthogonal(generator, config.init_gain)
    init_orthogonal(discriminator, config.init_gain)
    if initial is not None:
        apply_initial_weights(initial, generator, discriminator, config.seed)
    generator.to(device)
    discriminator.to(device)
    if config.fidelity_weight == 0 and vgg is None:
        log.info("fidelity_weight is 0: no fidelity loss, no VGG19")
        fidelity: nn.Module = NoFidelity()
    else:
        fidelity = FidelityLoss(vgg if vgg is not None else shared_vgg19(config.vgg_weights, dist)).to(device)
    options = step_options(config)
    apply_step_options(generator, discriminator, fidelity, options)
    opt_g, opt_d = make_optimizers(generator, discriminator, OptimizerSettings(
        config.g_lr, config.d_lr, config.beta1, config.beta2, config.weight_decay),
        fused=options.fused)
    weights = LossWeights(config.adv_weight, config.fidelity_weight, config.identity_weight)
    pool_seed = int(np.random.SeedSequence([config.seed, rank, 2]).generate_state(1)[0])
    return TrainingNetworks(generator, discriminator, fidelity, options, opt_g, opt_d, weights,
                            mixed_precision(config.precision, device.type),
                            ImagePool(config.pool_size, seed=pool_seed))
