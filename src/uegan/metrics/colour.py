"""CIEDE2000 colour difference of 8-bit sRGB images, through CIE Lab as scikit-image computes it
(see :mod:`uegan.metrics`)."""

from __future__ import annotations

import math

import torch

from uegan.metrics import protocol as _protocol  # module attributes, so tests can patch them
from uegan.metrics.protocol import BORDER, DATA_RANGE, ImageLike, Layout, check_batch, crop_border, as_pair

# sRGB -> CIE XYZ -> CIE Lab as scikit-image's rgb2lab (``skimage.color.colorconv``)
SRGB_TO_XYZ: tuple[tuple[float, float, float], ...] = ((0.412453, 0.357580, 0.180423),
                                                       (0.212671, 0.715160, 0.072169),
                                                       (0.019334, 0.119193, 0.950227))
"""Linear sRGB (rows of the product: X, Y, Z), scikit-image's ``xyz_from_rgb``."""
D65_WHITE: tuple[float, float, float] = (0.95047, 1.0, 1.08883)
"""CIE XYZ of the reference white (D65, 2 degree observer) as scikit-image has it."""


def _srgb_linear(values: torch.Tensor) -> torch.Tensor:
    """Linear light of 8-bit sRGB values (float64) as scikit-image computes it."""
    v = values * (1.0 / DATA_RANGE)
    return torch.where(v > 0.04045, ((v + 0.055) / 1.055).pow(2.4), v / 12.92)


def srgb_to_lab(rgb: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """CIE Lab (D65, 2 degree observer; float64, same shape) of 8-bit sRGB values in [0, 255].

    ``dim`` is the channel dimension (R, G, B in; L, a, b out). Step by step as scikit-image's
    ``rgb2lab`` on ``uint8`` images: ``v = value * (1 / 255)``; linear ``((v + 0.055) / 1.055)^2.4``
    above 0.04045, else ``v / 12.92``; XYZ by :data:`SRGB_TO_XYZ`; divided by :data:`D65_WHITE`;
    ``f(t) = t^(1/3)`` above 0.008856, else ``7.787 t + 16 / 116``; ``L = 116 f(Y) - 16``,
    ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``.
    """
    if rgb.shape[dim] != 3:
        raise ValueError(f"expected 3 channels along dim {dim}, got shape {tuple(rgb.shape)}")
    if rgb.dtype == torch.uint8:  # the same numbers, looked up: pow is the costliest step
        table = _srgb_linear(torch.arange(256, dtype=torch.float64, device=rgb.device))
        r, g, b = (torch.take(table, channel.long()) for channel in rgb.unbind(dim))
    else:
        r, g, b = (_srgb_linear(channel.to(torch.float64)) for channel in rgb.unbind(dim))
    f = []
    for row, white in zip(SRGB_TO_XYZ, D65_WHITE):
        t = (r * row[0] + g * row[1] + b * row[2]) / white
        f.append(torch.where(t > 0.008856, _cube_root(t), t * 7.787 + 16.0 / 116.0))
    fx, fy, fz = f
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=dim)


def _cube_root(t: torch.Tensor) -> torch.Tensor:
    """``t^(1/3)`` for t > 0 as ``exp(log(t) / 3)``: within a few ulp of ``cbrt`` (torch has none)
    and several times faster than ``pow``. Non-positive t give nan or 0 (callers mask them)."""
    return torch.exp(torch.log(t).mul_(1.0 / 3.0))


def _pow7(x: torch.Tensor) -> torch.Tensor:
    """``x^7`` by multiplications (``pow`` with an exponent of 7 is ten times slower)."""
    x2 = x * x
    return (x2 * x2).mul_(x2).mul_(x)


def _hue_2pi(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``atan2(b, a)`` moved to [0, 2 pi) (scikit-image's ``_cart2polar_2pi``)."""
    h = torch.atan2(b, a)
    return torch.where(h < 0, h + 2 * math.pi, h)


def ciede2000_lab(lab1: torch.Tensor, lab2: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of two Lab tensors; float64, ``dim`` removed.

    The formulas of Sharma, Wu & Dalal (2005) as scikit-image's ``deltaE_ciede2000`` writes
    them: hue angles in [0, 2 pi); where either chroma C'1 C'2 is 0 the hue difference is 0 and
    the mean hue is the sum of the two hues; elsewhere, when the hues are more than pi apart,
    the mean hue is moved by pi (``(h1 + h2 +- 2 pi) / 2``).
    """
    L1, a1, b1 = lab1.to(torch.float64).unbind(dim)
    L2, a2, b2 = lab2.to(torch.float64).unbind(dim)
    pi = math.pi
    # a' = (1 + G) a, G from the mean chroma of the pair
    c7 = _pow7(0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2)))
    scale = 1 + 0.5 * (1 - torch.sqrt(c7 / (c7 + 25.0 ** 7)))
    a1, a2 = a1 * scale, a2 * scale
    C1, C2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    h1, h2 = _hue_2pi(b1, a1), _hue_2pi(b2, a2)

    L_mean = 0.5 * (L1 + L2)
    L_dev = (L_mean - 50).square()
    L_term = (L2 - L1) / (1 + 0.015 * L_dev / torch.sqrt(20 + L_dev))

    C_mean = 0.5 * (C1 + C2)
    C_term = (C2 - C1) / (1 + 0.045 * C_mean)

    h_diff, h_sum, CC = h2 - h1, h1 + h2, C1 * C2
    achromatic = CC == 0.0
    dh = torch.where(h_diff > pi, h_diff - 2 * pi, torch.where(h_diff < -pi, h_diff + 2 * pi, h_diff))
    dh = torch.where(achromatic, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(CC) * torch.sin(dh / 2)
    wrap = ~achromatic & (h_diff.abs() > pi)
    H_mean = torch.where(wrap, torch.where(h_sum < 2 * pi, h_sum + 2 * pi, h_sum - 2 * pi), h_sum)
    H_mean = torch.where(achromatic, 2 * H_mean, H_mean) * 0.5
    T = (1 - 0.17 * torch.cos(H_mean - math.radians(30)) + 0.24 * torch.cos(2 * H_mean)
         + 0.32 * torch.cos(3 * H_mean + math.radians(6)) - 0.20 * torch.cos(4 * H_mean - math.radians(63)))
    H_term = dH / (1 + 0.015 * C_mean * T)

    c7 = _pow7(C_mean)
    R_C = 2 * torch.sqrt(c7 / (c7 + 25.0 ** 7))
    d_theta = math.radians(30) * torch.exp(-((torch.rad2deg(H_mean) - 275) / 25).square())
    R_term = -torch.sin(2 * d_theta) * R_C * C_term * H_term

    squared = L_term.square() + C_term.square() + H_term.square() + R_term
    return torch.sqrt(squared.clamp_min(0))


def _ciede2000_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of the CIEDE2000 map per image of two N x 3 x H x W batches (float64, shape N)."""
    return ciede2000_lab(srgb_to_lab(b), srgb_to_lab(a)).sum(dim=(1, 2))


DEVICE_TILE_PIXELS = 1 << 22
"""Off the CPU, CIEDE2000 runs per image in bands of rows of at most this many pixels: a few
dozen float64 maps of a band (32 MiB each) live at once, whatever the image size. On a CPU the
bands follow CPU_TILE_ELEMENTS, as for PSNR and SSIM."""


def ciede2000_batch(pred: torch.Tensor, target: torch.Tensor, border: int = BORDER) -> torch.Tensor:
    """Mean CIEDE2000 difference of each image of two N x 3 x H x W batches in [0, 255]; float64, shape N.

    The target is the reference colour (``lab1`` of :func:`ciede2000_lab`); the formula is
    symmetric up to rounding.
    """
    check_batch(pred, target)
    a, b = crop_border(pred, border), crop_border(target, border)
    n, _, height, width = a.shape
    tile = _protocol.CPU_TILE_ELEMENTS if a.device.type == "cpu" else DEVICE_TILE_PIXELS
    rows = max(1, tile // width)  # pointwise: bands need no overlap
    total = torch.zeros(n, dtype=torch.float64, device=a.device)
    for i in range(n):
        for top in range(0, height, rows):
            band = slice(top, min(height, top + rows))
            total[i] += _ciede2000_sum(a[i:i + 1, :, band], b[i:i + 1, :, band])[0]
    return total / (height * width)


def ciede2000(pred: ImageLike, target: ImageLike, border: int = BORDER, layout: Layout = "auto") -> float:
    """Mean CIEDE2000 colour difference of one 8-bit RGB image from its reference (lower is better)."""
    a, b = as_pair(pred, target, layout)
    return float(ciede2000_batch(a, b, border=border)[0])
