"""The UEGAN five-scale discriminator with spectral normalisation."""

from __future__ import annotations

from collections.abc import Sequence
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

    def forward(self, x: torch.Tensor, calls: Sequence[int] | None = None) -> torch.Tensor:
        """``calls``: ``x`` is the inputs of consecutive calls of these batch sizes, joined
        along the batch (:meth:`Discriminator.forward`); here they are run one by one."""
        if calls is not None and len(calls) > 1:
            return torch.cat([self.forward(part) for part in x.split(list(calls))])
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

    def sigma(self) -> torch.Tensor:
        """sigma of one call: in train mode after one more power iteration (in place)."""
        conv = self.conv
        norm = conv.parametrizations.weight[0]
        matrix = conv.parametrizations.weight.original.flatten(1)
        if norm.training:
            with torch.no_grad():
                norm.v.copy_(F.normalize(torch.mv(matrix.t(), norm.u), dim=0, eps=norm.eps))
        v = norm.v.clone(memory_format=torch.contiguous_format)
        product = torch.mv(matrix, v)
        if norm.training:
            with torch.no_grad():
                norm.u.copy_(F.normalize(product, dim=0, eps=norm.eps))
        u = norm.u.clone(memory_format=torch.contiguous_format)
        return torch.dot(u, product)

    def forward(self, x: torch.Tensor, calls: Sequence[int] | None = None) -> torch.Tensor:
        """``calls``: ``x`` is the inputs of consecutive calls of these batch sizes, joined
        along the batch. The power iteration depends on the weight alone, so the calls' sigmas
        (one iteration each, in order) are computed first and the convolution runs once on the
        joined batch, each call's samples divided by their own sigma: the same as the calls one
        by one, up to rounding (``tests/test_acceleration.py``)."""
        conv = self.conv
        out = conv._conv_forward(x, conv.parametrizations.weight.original, None)
        if calls is None or len(calls) == 1:
            out = out / self.sigma()
        else:
            sigmas = torch.stack([self.sigma() for _ in calls])
            counts = torch.tensor(list(calls), device=sigmas.device)
            out = out / sigmas.repeat_interleave(counts, output_size=x.shape[0]).view(-1, 1, 1, 1)
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

    def forward(self, x: torch.Tensor, calls: Sequence[int] | None = None) -> list[torch.Tensor]:
        """``calls`` (batch sizes summing to ``len(x)``): ``x`` joins the inputs of that many
        consecutive calls, and the scores are those of the calls one by one, joined the same way
        (each call one power iteration, in order; one convolution per layer with
        :class:`OutputScaledDBlock`). A keyword of ``forward`` so that DDP's wrapper sees it."""
        if calls is not None and sum(calls) != x.shape[0]:
            raise ValueError(f"calls {tuple(calls)} do not add up to the batch of {x.shape[0]}")
        scores = []
        for block, head in zip(self.blocks, self.heads):
            x = block(x, calls)
            scores.append(head(x))
        return scores
