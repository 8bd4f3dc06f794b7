"""Carrying the generator's effect from a working size to full resolution: local affine colour
transforms fitted by a guided filter.

A guided filter (He et al.) fits ``out = A(x) in + b(x)`` (3 x 3 matrix and offset per pixel)
between the small input and the small output; the smoothed coefficients are interpolated to full
size (the "fast guided filter" of He & Sun) and applied in strips, so memory stays bounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# window radius in working-size pixels and regularisation in [0, 1] units; chosen by the sweep
# of benchmarks/transfer_quality.py
DEFAULT_GUIDE_RADIUS = 4
DEFAULT_GUIDE_EPS = 1e-5


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows, windows cut at the border (normalised by their size)."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def fit_local_affine(guide: torch.Tensor, target: torch.Tensor, radius: int = DEFAULT_GUIDE_RADIUS,
                     eps: float = DEFAULT_GUIDE_EPS) -> torch.Tensor:
    """Guided-filter coefficients for ``target ~ A guide + b`` (1 x 3 x h x w each, in [0, 1]).

    Returns 1 x 12 x h x w: A (row-major 3 x 3, output channel first) then b, box-smoothed.
    """
    guide = guide.double()
    target = target.double()
    _, _, h, w = guide.shape
    radius = max(0, min(radius, (min(h, w) - 1) // 2))
    mean_i = _box(guide, radius)
    mean_p = _box(target, radius)
    pairs_ii = torch.stack([guide[:, a] * guide[:, b] for a in range(3) for b in range(3)], 1)
    pairs_ip = torch.stack([target[:, a] * guide[:, b] for a in range(3) for b in range(3)], 1)
    cov_ii = _box(pairs_ii, radius) - torch.stack(
        [mean_i[:, a] * mean_i[:, b] for a in range(3) for b in range(3)], 1)
    cov_pi = _box(pairs_ip, radius) - torch.stack(
        [mean_p[:, a] * mean_i[:, b] for a in range(3) for b in range(3)], 1)
    sigma = cov_ii[0].permute(1, 2, 0).reshape(h, w, 3, 3) + eps * torch.eye(3, dtype=torch.float64)
    cross = cov_pi[0].permute(1, 2, 0).reshape(h, w, 3, 3)  # [out channel, guide channel]
    # A sigma = cross  <=>  sigma^T A^T = cross^T  (sigma symmetric)
    a = torch.linalg.solve(sigma, cross.transpose(-1, -2)).transpose(-1, -2)  # h x w x 3 x 3
    a = a.reshape(h, w, 9).permute(2, 0, 1)[None]
    b = mean_p - _apply_matrix(a, mean_i)
    coefficients = torch.cat([a, b], dim=1)
    return _box(coefficients, radius).float()


def _apply_matrix(a: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """sum_j A[c, j] image[j] for A as N x 9 x h x w (row-major) and image N x 3 x h x w."""
    return torch.stack([a[:, 3 * c] * image[:, 0] + a[:, 3 * c + 1] * image[:, 1]
                        + a[:, 3 * c + 2] * image[:, 2] for c in range(3)], dim=1)


def _sample_coordinates(count_out: int, count_in: int) -> torch.Tensor:
    """Where ``count_out`` pixel centres fall on a grid of ``count_in`` pixel centres, in
    grid_sample's normalised coordinates (align_corners=True: -1 and 1 are the outer centres)."""
    source = (torch.arange(count_out, dtype=torch.float64) + 0.5) * count_in / count_out - 0.5
    return (source / max(count_in - 1, 1) * 2 - 1).float()


class LocalAffineTransfer:
    """Coefficients fitted at working size, interpolated to full size and applied in strips."""

    def __init__(self, coefficients: torch.Tensor, height: int, width: int):
        self.coefficients = coefficients.float()
        _, _, small_h, small_w = coefficients.shape
        device = coefficients.device
        self.rows = _sample_coordinates(height, small_h).to(device)
        self.cols = _sample_coordinates(width, small_w).to(device)
        self.height, self.width = height, width

    def apply(self, strip: torch.Tensor, row_start: int) -> torch.Tensor:
        """``strip``: 3 x s x W input rows starting at ``row_start`` -> 3 x s x W output."""
        rows = self.rows[row_start:row_start + strip.shape[1]]
        grid = torch.stack(torch.broadcast_tensors(self.cols[None, :], rows[:, None]), dim=-1)
        # bilinear interpolation of the 12 coefficient maps at the strip's pixel centres
        c = F.grid_sample(self.coefficients, grid[None], mode="bilinear", padding_mode="border",
                          align_corners=True)[0]
        strip = strip.to(c.device, torch.float32)
        out = c[9:].clone()
        matrix = c[:9].view(3, 3, *c.shape[1:])  # [out channel, in channel]
        for channel in range(3):
            out.addcmul_(matrix[:, channel], strip[channel])
        return out
