"""Exact rewrites of the networks' layers for speed: the same parameters, buffers and
state-dict keys, the same result up to floating-point rounding (``tests/test_acceleration.py``).

Each fast form is a subclass defined next to the layer it replaces (``ConvFirstUpsample`` and
``LocalOnlyGlobalAttention`` in ``layers``, ``OutputScaledDBlock`` in ``discriminator``). A
rewrite re-classes the modules of exactly the replaced type in place, so checkpoints,
optimisers and DDP see the same module objects; ``restore_*`` undoes it.
"""

from __future__ import annotations

from torch import nn

from uegan.models.discriminator import DBlock, OutputScaledDBlock
from uegan.models.layers import (ConvFirstUpsample, GlobalAttention, LocalOnlyGlobalAttention,
                                 Upsample)

__all__ = ["ConvFirstUpsample", "LocalOnlyGlobalAttention", "OutputScaledDBlock",
           "restore_attention", "restore_dblocks", "restore_upsample", "skip_inert_attention",
           "use_conv_first_upsample", "use_output_scaled_spectral_norm"]


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
