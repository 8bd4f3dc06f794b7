"""The UEGAN five-scale discriminator with spectral normalisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from uegan.models.layers import LEAKY_SLOPE, reflect_conv

# (kernel size, output channels as a multiple of conv_dim) of the five d-blocks
D_BLOCKS: tuple[tuple[int, int], ...] = ((7, 1), (7, 2), (7, 4), (5, 8), (5, 16))
MIN_SIDE = 96


class SpectralNorm(nn.Module):
    """Spectral normalisation as a parametrization: ``weight = W / sigma(W)``.

    sigma is estimated by power iteration with persistent vectors ``u`` (output side) and ``v``
    (input side). In training mode every evaluation runs one iteration in the order of Miyato et
    al. and of ``torch.nn.utils.spectral_norm`` (first ``v = normalize(W^T u)``, then
    ``u = normalize(W v)``), which the published model uses; eval mode only reads ``u`` and ``v``.
    (``torch.nn.utils.parametrizations.spectral_norm`` updates in the opposite order, and so
    gives different numbers.)
    """

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        self.eps = eps
        rows = weight.shape[0]
        columns = weight[0].numel()
        self.register_buffer("u", F.normalize(weight.new_empty(rows).normal_(), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(weight.new_empty(columns).normal_(), dim=0, eps=eps))

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor) -> None:
        # in place, so the update reaches the module's buffers under any wrapper
        self.v.copy_(F.normalize(torch.mv(matrix.t(), self.u), dim=0, eps=self.eps))
        self.u.copy_(F.normalize(torch.mv(matrix, self.v), dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self._power_iteration(matrix)
        # clones: the buffers change in place on the next call, while autograd still needs these
        u = self.u.clone(memory_format=torch.contiguous_format)
        v = self.v.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, torch.mv(matrix, v))
        return weight / sigma


def spectral_norm(conv: nn.Conv2d) -> nn.Conv2d:
    """Put ``conv.weight`` under :class:`SpectralNorm` (keys ``parametrizations.weight.*``)."""
    parametrize.register_parametrization(conv, "weight", SpectralNorm(conv.weight.detach()))
    return conv


@dataclass(frozen=True)
class DiscriminatorConfig:
    conv_dim: int = 32

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class DBlock(nn.Module):
    """reflect-pad, stride-2 convolution with bias under spectral norm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = spectral_norm(reflect_conv(in_channels, out_channels, kernel_size, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), LEAKY_SLOPE)


class OutputScaledDBlock(DBlock):
    """:class:`DBlock` that divides the convolution's *output* by sigma instead of its weight
    (an exact rewrite for speed, ``uegan.models.fast``).

    ``conv(x, W / sigma) + b == conv(x, W) / sigma + b``. The published form reads and writes
    the whole weight to normalise it on every call, and its backward makes three more passes
    over it; here the division touches the (small) output map. The power iteration is the same
    (same order, same buffers, in place), and ``W v`` is computed once and shared by the
    iteration's ``u`` update and sigma (the published code computes the same product twice).
    The parameters, buffers and keys stay those of the parametrized convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        weight = conv.parametrizations.weight.original
        norm = conv.parametrizations.weight[0]
        matrix = weight.flatten(1)
        if norm.training:
            with torch.no_grad():
                norm.v.copy_(F.normalize(torch.mv(matrix.t(), norm.u), dim=0, eps=norm.eps))
        v = norm.v.clone(memory_format=torch.contiguous_format)
        product = torch.mv(matrix, v)
        if norm.training:
            with torch.no_grad():
                norm.u.copy_(F.normalize(product, dim=0, eps=norm.eps))
        u = norm.u.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, product)
        out = conv._conv_forward(x, weight, None) / sigma
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return F.leaky_relu(out, LEAKY_SLOPE)


class ScoreHead(nn.Module):
    """reflect-pad, stride-1 convolution to one channel (no bias, no spectral norm), tanh."""

    def __init__(self, in_channels: int, kernel_size: int):
        super().__init__()
        self.conv = reflect_conv(in_channels, 1, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


class Discriminator(nn.Module):
    """Returns five score maps, finest first. Sides must be at least 96 pixels.

    Spectral norm runs one power iteration per forward call in training mode, none in eval mode.
    """

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        blocks, heads = [], []
        in_channels = 3
        for kernel_size, multiple in D_BLOCKS:
            out_channels = multiple * config.conv_dim
            blocks.append(DBlock(in_channels, out_channels, kernel_size))
            heads.append(ScoreHead(out_channels, kernel_size))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        scores = []
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            scores.append(head(x))
        return scores
