"""Exact rewrites of the networks' layers for speed: the same parameters, buffers and
state-dict keys, the same result up to floating-point rounding (``tests/test_acceleration.py``).

A rewrite re-classes a module in place (``module.__class__``), so checkpoints, optimisers and
DDP see the same module; ``restore_*`` undoes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uegan.models.discriminator import DBlock
from uegan.models.layers import LEAKY_SLOPE, NORM_EPS, GlobalAttention, Upsample


class ConvFirstUpsample(Upsample):
    """:class:`Upsample` with the 1x1 convolution run before the bilinear upsampling.

    Both are linear and the bilinear weights of every output pixel sum to 1 (align_corners
    included), so ``conv(up(x)) == up(conv(x))``, bias included, up to rounding; the
    convolution then runs on a quarter of the pixels, and the upsampling on half the channels.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=True)


class LocalOnlyGlobalAttention(GlobalAttention):
    """The published GAM without its inert global branch: ``InstanceNorm(W_x * x)``.

    The global branch adds ``W_g g + b``, constant over the image, right before an
    InstanceNorm that subtracts every per-channel mean: the output is the same (spec,
    "Findings"), up to rounding. For inference only: in training, the dead parameters' zero
    gradients become missing gradients, and Adam's weight decay would skip them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_x = self.fuse.weight[:, :self.channels]
        return F.instance_norm(F.conv2d(x, w_x), eps=NORM_EPS)


class OutputScaledDBlock(DBlock):
    """:class:`DBlock` that divides the convolution's *output* by sigma instead of its weight.

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


def use_output_scaled_spectral_norm(module: nn.Module) -> int:
    """Every (exact) :class:`DBlock` becomes an :class:`OutputScaledDBlock`."""
    return _swap_class(module, DBlock, OutputScaledDBlock)


def restore_dblocks(module: nn.Module) -> int:
    return _swap_class(module, OutputScaledDBlock, DBlock)


def _swap_class(root: nn.Module, exact_type: type, new_type: type) -> int:
    """Re-class every submodule whose type is exactly ``exact_type`` (parameters, buffers,
    hooks and keys untouched); returns how many."""
    count = 0
    for module in root.modules():
        if type(module) is exact_type:
            module.__class__ = new_type
            count += 1
    return count


def use_conv_first_upsample(module: nn.Module) -> int:
    """Every (exact) :class:`Upsample` in ``module`` becomes a :class:`ConvFirstUpsample`."""
    return _swap_class(module, Upsample, ConvFirstUpsample)


def restore_upsample(module: nn.Module) -> int:
    return _swap_class(module, ConvFirstUpsample, Upsample)


def skip_inert_attention(module: nn.Module) -> int:
    """Every (exact, published) :class:`GlobalAttention` becomes a
    :class:`LocalOnlyGlobalAttention`. Inference only."""
    return _swap_class(module, GlobalAttention, LocalOnlyGlobalAttention)


def restore_attention(module: nn.Module) -> int:
    return _swap_class(module, LocalOnlyGlobalAttention, GlobalAttention)
