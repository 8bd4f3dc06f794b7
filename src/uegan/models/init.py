"""The published initialisation: orthogonal weights (gain 0.02), zero biases."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

INIT_GAIN = 0.02


def _raw_weight(module: nn.Module) -> torch.Tensor:
    """The trainable weight: under spectral norm, the original (unnormalised) one."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


@torch.no_grad()
def init_orthogonal(model: nn.Module, gain: float = INIT_GAIN) -> None:
    """Every Conv2d and Linear weight orthogonal with ``gain``, every bias zero.

    Modules that set ``own_initialisation = True`` (and everything inside them) keep their own
    initialisation: none of the published model's modules does.
    """
    own = [name for name, module in model.named_modules() if getattr(module, "own_initialisation", False)]
    for name, module in model.named_modules():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in own):
            continue
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(_raw_weight(module), gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
