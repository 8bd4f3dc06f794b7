"""UEGAN losses: relativistic hinge quality loss, VGG fidelity loss, multiscale identity loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from uegan.models.vgg import VGG19Features

IdentityCriterion = Literal["l1", "charbonnier"]

FIDELITY_WEIGHTS: tuple[float, ...] = (1 / 64, 1 / 64, 1 / 32, 1 / 32, 1.0)
IDENTITY_SCALE_WEIGHTS: tuple[float, ...] = (1.0, 0.5, 0.25)
CHARBONNIER_EPS = 1e-3
FEATURE_NORM_EPS = 1e-5

# Under bf16 / fp16 autocast the networks' outputs arrive in that precision; every loss is
# computed in float32 (nothing changes in the published fp32 setting, nor in float64), so that a
# loss of about 8 is not rounded to bf16's steps of 1/16.
_HALF_PRECISION = (torch.float16, torch.bfloat16)


def _fp32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() if t.dtype in _HALF_PRECISION else t for t in tensors)


def rahinge_d_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Relativistic average hinge loss for D, summed over the scales."""
    total = _fp32(real[0])[0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        r, f = _fp32(r, f)
        total = total + 0.5 * (F.relu(1 - (r - f.mean())).mean() + F.relu(1 + (f - r.mean())).mean())
    return total


def rahinge_g_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Relativistic average hinge loss for G (roles of real and fake swapped), summed over scales."""
    total = _fp32(real[0])[0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        r, f = _fp32(r, f)
        total = total + 0.5 * (F.relu(1 + (r - f.mean())).mean() + F.relu(1 - (f - r.mean())).mean())
    return total


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """mean(sqrt((a - b)^2 + eps^2)): a smooth L1 that stays differentiable at zero."""
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


def identity_loss(pred: torch.Tensor, target: torch.Tensor,
                  criterion: IdentityCriterion = "l1") -> torch.Tensor:
    """Multiscale identity loss: scales 1, 1/2, 1/4 weighted 1, 1/2, 1/4, 2x2 average pooling."""
    if criterion == "l1":
        base = F.l1_loss
    elif criterion == "charbonnier":
        base = charbonnier
    else:
        raise ValueError(f"unknown identity criterion {criterion!r}: use 'l1' or 'charbonnier'")
    pred, target = _fp32(pred, target)
    total = pred.new_zeros(())
    for index, weight in enumerate(IDENTITY_SCALE_WEIGHTS):
        if index > 0:
            pred = F.avg_pool2d(pred, 2, stride=2)
            target = F.avg_pool2d(target, 2, stride=2)
        total = total + weight * base(pred, target)
    return total


class FidelityLoss(nn.Module):
    """VGG19 perceptual loss between two images in [0, 1].

    Features after relu1_1 .. relu5_1, each instance-normalised, compared by MSE with weights
    1/64, 1/64, 1/32, 1/32, 1. The two images go through VGG separately so that no graph is
    built for a target that needs no gradient (the generator's own input, in training).
    """

    def __init__(self, vgg: VGG19Features):
        super().__init__()
        self.vgg = vgg

    def forward(self, x01: torch.Tensor, y01: torch.Tensor) -> torch.Tensor:
        total = _fp32(x01)[0].new_zeros(())
        for weight, fx, fy in zip(FIDELITY_WEIGHTS, self.vgg(x01), self.vgg(y01), strict=True):
            fx, fy = _fp32(fx, fy)
            fx = F.instance_norm(fx, eps=FEATURE_NORM_EPS)
            fy = F.instance_norm(fy, eps=FEATURE_NORM_EPS)
            total = total + weight * F.mse_loss(fx, fy)
        return total
