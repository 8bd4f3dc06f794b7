"""Fine-tuning: a training run that starts from weights (``--init-from CHECKPOINT``).

The file is any generator file :func:`uegan.checkpoints.load_weights` reads: a published
``.pth`` (G and D), a training checkpoint of this project (G and D) or an export (G only; D then
starts from its random initialisation, drawn from the run's seed as in a run from scratch). Only
the weights are taken: the step count, the optimisers, the learning-rate schedule, the data
streams and the image pool start fresh, so the run is a new run from these weights.

The generator in the file must be the generator of the run's variant at the run's ``conv_dim``
(and the discriminator, when there is one, of its ``d_conv_dim``); otherwise one error names
both. A file that records another variant name with the same generator (``uegan`` and
``uegan-charbonnier`` differ only in the identity loss) is fine-tuned with the run's loss and
says so in a log line. With ``--resume``, a checkpoint of the run itself wins (the run started
from the weights and has gone on since).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from uegan.checkpoints import load_weights
from uegan.errors import UserError
from uegan.training.config import TrainConfig
from uegan.variants import Variant

log = logging.getLogger(__name__)


@dataclass
class InitialWeights:
    """The weights a run starts from (on the CPU), and where they come from."""

    path: Path
    source_format: str                                  # "published", "train" or "export"
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor] | None       # None: the file holds G only


def read_initial_weights(config: TrainConfig, variant: Variant) -> InitialWeights:
    """The weights of ``config.init_from``, checked against the run's variant and widths."""
    if config.init_from is None:
        raise ValueError("read_initial_weights needs config.init_from")
    path = Path(config.init_from).expanduser()
    with torch.random.fork_rng(devices=[]):  # building the networks draws no random numbers
        weights = load_weights(path)
    loaded = weights.generator
    found, expected = loaded.generator.config, variant.generator_config(config.conv_dim)
    if found != expected:
        named = f"a {loaded.variant!r} generator" if loaded.variant else "a generator"
        raise UserError(f"--init-from {path} holds {named} with conv_dim {found.conv_dim}, but "
                        f"this run trains {variant.name!r} with conv_dim {config.conv_dim}: "
                        f"train the variant and width of the file (--variant, --set conv_dim=N) "
                        f"or start from other weights")
    if loaded.variant is not None and loaded.variant != variant.name:
        log.info("--init-from %s was trained as %s; %s has the same generator and fine-tunes it "
                 "with its own losses", path, loaded.variant, variant.name)
    d_config = weights.discriminator_config
    if d_config is not None and d_config.conv_dim != config.d_conv_dim:
        raise UserError(f"--init-from {path} holds a discriminator with conv_dim "
                        f"{d_config.conv_dim}, but this run's d_conv_dim is {config.d_conv_dim}: "
                        f"pass --set d_conv_dim={d_config.conv_dim}")
    return InitialWeights(path, loaded.source_format, loaded.generator.state_dict(),
                          weights.discriminator_state)


def apply_initial_weights(weights: InitialWeights, generator: nn.Module,
                          discriminator: nn.Module, seed: int) -> None:
    """Copy the weights into the freshly built (and initialised) networks."""
    generator.load_state_dict(weights.generator)
    if weights.discriminator is not None:
        discriminator.load_state_dict(weights.discriminator)
        loaded = "G and D loaded"
    else:
        loaded = f"G only loaded (D starts from its random initialisation, seed {seed})"
    log.info("started from %s (%s file): %s; the step count, optimisers and learning-rate "
             "schedule start fresh", weights.path, weights.source_format, loaded)


def initial_weights_for(config: TrainConfig, variant: Variant, resume_from: Path | None
                        ) -> InitialWeights | None:
    """The weights a run starts from: None without ``--init-from``, and when the run resumes
    from a checkpoint of its own (which wins: it started from those weights and went on)."""
    if config.init_from is None:
        return None
    if resume_from is not None:
        log.info("--init-from %s not used: resuming from %s, a checkpoint of this run",
                 config.init_from, resume_from)
        return None
    return read_initial_weights(config, variant)
