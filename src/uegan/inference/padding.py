"""Padding images to the sizes the generator accepts: sides multiples of 16, mirrored edges."""

from __future__ import annotations

import torch

from uegan.models.generator import DIVISOR


def padded_size(height: int, width: int, divisor: int = DIVISOR) -> tuple[int, int]:
    """The next multiples of ``divisor``; at least two bottleneck pixels (the GAM needs them)."""
    padded_h = -(-height // divisor) * divisor
    padded_w = -(-width // divisor) * divisor
    if padded_h == divisor and padded_w == divisor:
        padded_w = 2 * divisor
    return padded_h, padded_w


def reflect_indices(size: int, total: int) -> torch.Tensor:
    """Indices 0..total-1 mapped into 0..size-1 by mirror reflection (edge not repeated),
    repeated as often as needed, so any amount of padding works."""
    if size == 1:
        return torch.zeros(total, dtype=torch.long)
    period = 2 * (size - 1)
    index = torch.arange(total) % period
    return torch.where(index < size, index, period - index)


def pad_reflect(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad the last two dims of ``x`` at the bottom and right to ``height`` x ``width``."""
    h, w = x.shape[-2:]
    if h != height:
        x = x.index_select(-2, reflect_indices(h, height).to(x.device))
    if w != width:
        x = x.index_select(-1, reflect_indices(w, width).to(x.device))
    return x
