"""Reference operations shared by the property tests of the models (float64, written out)."""

from __future__ import annotations

import math

import torch


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (biases included), weights ~ N(0, 1/fan_in): O(1) activations."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = 1 / math.sqrt(p[0].numel()) if p.ndim >= 2 else 0.3
            p.copy_(torch.randn(p.shape, generator=rng, dtype=p.dtype) * scale)


def instance_norm(y: torch.Tensor) -> torch.Tensor:
    """InstanceNorm2d without affine parameters: biased variance, eps 1e-5."""
    mean = y.mean(dim=(2, 3), keepdim=True)
    var = ((y - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (y - mean) / torch.sqrt(var + 1e-5)
