"""Global attention that works: the GAM's global statistics modulate the normalised features.

The published GAM (``uegan.models.layers.GlobalAttention``) adds its global vector before an
InstanceNorm, which removes it again (spec, "Findings"). :class:`ModulatedGlobalAttention`
keeps the same global branch (``[mean, std]`` -> ``reduce`` -> activation -> ``expand``) but
applies the global vector *after* the normalisation, as a per-channel scale and shift (FiLM /
AdaIN style):

    g   = expand(leaky_relu(reduce([mean(x), std(x)]), 0.2))      (c channels, per sample)
    y   = InstanceNorm(W_x * x)                                     (the published GAM output)
    out = y * (1 + W_s g + b_s) + (W_b g + b_b)

``W_s, b_s, W_b, b_b`` start at zero, so a fresh module computes exactly the published GAM output
(with the inert parts left out: the global half of ``fuse`` and its bias). They are plain
``nn.Parameter`` tensors, not ``nn.Linear`` modules, so ``uegan.models.init.init_orthogonal`` (which
initialises every Conv2d / Linear) leaves them at zero: the identity start survives the
published initialisation.

The hidden activation is LeakyReLU(0.2), as everywhere else in UEGAN, not the published GAM's
ReLU: the global MLP has only c/8 hidden units (one in ``ga1`` at ``conv_dim`` 8, four at 32), and
the mean and std it reads are mostly positive, so a ReLU unit is often inactive for every input;
when all of a block's units are, its global vector is zero and stays zero (no gradient reaches
them).

The zero start means that, at the very first step, only ``W_s, b_s, W_b, b_b`` receive gradient
(``d out / d W_s = y * g``, non-zero); ``reduce`` and ``expand`` start receiving gradient as soon
as the modulation weights move away from zero, i.e. after the first optimiser step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uegan.models.layers import LEAKY_SLOPE, GlobalAttentionBase, whole_mask


class ModulatedGlobalAttention(GlobalAttentionBase):
    """GAM whose global vector scales and shifts the instance-normalised features."""

    def __init__(self, channels: int):
        super().__init__()
        self.add_global_mlp(channels)
        # the local half of the published ``fuse``; its bias would be removed by the norm
        self.fuse = nn.Conv2d(channels, channels, 1, bias=False)
        self.scale_weight = nn.Parameter(torch.zeros(channels, channels))
        self.scale_bias = nn.Parameter(torch.zeros(channels))
        self.shift_weight = nn.Parameter(torch.zeros(channels, channels))
        self.shift_bias = nn.Parameter(torch.zeros(channels))

    @torch.no_grad()
    def reset_modulation(self) -> None:
        """Set the modulation to the identity (all four modulation tensors zero)."""
        for param in (self.scale_weight, self.scale_bias, self.shift_weight, self.shift_bias):
            param.zero_()

    def local_term(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(x)

    def global_from_moments(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """N x c: the published global branch, evaluated on ``[mean, std]``."""
        hidden = F.leaky_relu(self.reduce(torch.cat([mean, std], dim=1)), LEAKY_SLOPE)
        return self.expand(hidden).flatten(1)

    def modulate(self, normalised: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        scale = F.linear(g, self.scale_weight, self.scale_bias)[:, :, None, None]
        shift = F.linear(g, self.shift_weight, self.shift_bias)[:, :, None, None]
        return normalised * (1 + scale) + shift

    def global_entries(self) -> dict[str, torch.Tensor]:
        names = ("reduce.weight", "expand.weight", "scale_weight", "scale_bias", "shift_weight",
                 "shift_bias")
        return {name: whole_mask(self.get_parameter(name)) for name in names}
