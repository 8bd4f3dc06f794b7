"""Full-reference image metrics under the published FiveK protocol, in torch, on any device.

The protocol (``docs/uegan-spec.md``, "Evaluation protocol"): 8-bit RGB images, 4 pixels cropped
from every border, float64 arithmetic.

- :func:`psnr`: ``10 log10(255^2 / MSE)`` over all remaining pixels and channels.
- :func:`ssim` with ``protocol="published"``: what the published scripts compute, i.e.
  scikit-image ``structural_similarity(a, b, channel_axis=-1, data_range=255)`` with its
  defaults: 7x7 uniform window, sample covariance (``N / (N - 1)``), K1 = 0.01, K2 = 0.03, the
  SSIM map averaged over the positions where the window fits entirely, then over channels.
- :func:`ssim` with ``protocol="gaussian"``: the SSIM of Wang et al. (2004) and of MATLAB's
  ``ssim``: 11x11 Gaussian window with sigma 1.5, population covariance, same constants;
  equal to scikit-image with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
  Most other enhancement papers report this one; it gives different figures.
- :func:`ciede2000`: the mean over the remaining pixels of the CIEDE2000 colour difference
  (Sharma, Wu & Dalal 2005; kL = kC = kH = 1) between the two images in CIE Lab. The 8-bit
  values / 255 are taken as sRGB and converted to Lab (D65, 2 degree observer) with the formulas
  and constants of scikit-image's ``rgb2lab`` (:func:`srgb_to_lab`), and the difference follows
  scikit-image's ``deltaE_ciede2000`` branch for branch (:func:`ciede2000_lab`); the two agree to
  rounding (about 1e-13). Lower is better; identical images give 0.

Inputs: ``numpy.ndarray`` of shape H x W x 3 (uint8), or ``torch.Tensor`` of shape H x W x 3 or
3 x H x W, uint8 or floating point holding values in [0, 255] (normally whole numbers, e.g. from
:func:`quantize`). Layout is decided by which end has size 3 (``layout=`` overrides it when both
do). Tensors are evaluated on their own device; both inputs must share it. Batched tensors
(N x 3 x H x W) go to :func:`psnr_batch` / :func:`ssim_batch` / :func:`ciede2000_batch`, which
return one value per image.

scikit-image is *not* a dependency: it is only the reference the tests compare against.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

ImageLike = np.ndarray | torch.Tensor
Layout = Literal["auto", "hwc", "chw"]
SsimProtocol = Literal["published", "gaussian"]

LOWER_IS_BETTER: frozenset[str] = frozenset({"ciede2000"})
"""Metrics where a smaller figure is the better one (for PSNR, SSIM and NIMA larger is better)."""
DIGITS: dict[str, int] = {"psnr": 2, "ssim": 4, "ciede2000": 2, "nima": 2}
"""Decimals shown for each metric in tables, pages and reports."""
BORDER = 4
"""Pixels cropped from every border before PSNR, SSIM and CIEDE2000 (published protocol)."""
DATA_RANGE = 255.0
K1 = 0.01
K2 = 0.03
PUBLISHED_WINDOW = 7
GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5  # scipy/scikit-image default: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_PROTOCOLS: tuple[str, ...] = ("published", "gaussian")

# sRGB -> CIE XYZ -> CIE Lab as scikit-image's rgb2lab (``skimage.color.colorconv``)
SRGB_TO_XYZ: tuple[tuple[float, float, float], ...] = ((0.412453, 0.357580, 0.180423),
                                                       (0.212671, 0.715160, 0.072169),
                                                       (0.019334, 0.119193, 0.950227))
"""Linear sRGB (rows of the product: X, Y, Z), scikit-image's ``xyz_from_rgb``."""
D65_WHITE: tuple[float, float, float] = (0.95047, 1.0, 1.08883)
"""CIE XYZ of the reference white (D65, 2 degree observer) as scikit-image has it."""


def quantize(image_m11: torch.Tensor) -> torch.Tensor:
    """Map a tensor in [-1, 1] to 8-bit values as saved files hold them (uint8, same shape).

    ``floor(((y + 1) / 2).clamp(0, 1) * 255 + 0.5)``, computed in the input's dtype.
    """
    if not torch.is_floating_point(image_m11):
        raise TypeError(f"quantize expects a floating-point tensor in [-1, 1], got {image_m11.dtype}")
    scaled = ((image_m11 + 1) / 2).clamp(0, 1) * 255 + 0.5
    return torch.floor(scaled).to(torch.uint8)


def to_chw(image: ImageLike, layout: Layout = "auto", device: torch.device | str | None = None
           ) -> torch.Tensor:
    """One image as a 3 x H x W tensor (a view where possible; dtype and values unchanged)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(image).__name__}")
    if tensor.dtype == torch.bool or torch.is_complex(tensor):
        raise TypeError(f"unsupported image dtype {tensor.dtype}")
    if device is not None:
        tensor = tensor.to(device)
    if tensor.ndim != 3:
        raise ValueError(f"expected one RGB image (H x W x 3 or 3 x H x W), got shape {tuple(tensor.shape)}")
    if layout == "auto":
        hwc, chw = tensor.shape[-1] == 3, tensor.shape[0] == 3
        if hwc and chw:
            raise ValueError(f"shape {tuple(tensor.shape)} is ambiguous: pass layout='hwc' or 'chw'")
        if not (hwc or chw):
            raise ValueError(f"expected 3 channels first or last, got shape {tuple(tensor.shape)}")
        layout = "hwc" if hwc else "chw"
    if layout == "hwc":
        tensor = tensor.permute(2, 0, 1)
    elif layout != "chw":
        raise ValueError(f"unknown layout {layout!r}")
    if tensor.shape[0] != 3:
        raise ValueError(f"expected 3 channels, got shape {tuple(tensor.shape)} as {layout}")
    return tensor


def _pair(pred: ImageLike, target: ImageLike, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    device = next((x.device for x in (pred, target) if isinstance(x, torch.Tensor)), None)
    a = to_chw(pred, layout, device=device if isinstance(pred, np.ndarray) else None)
    b = to_chw(target, layout, device=device if isinstance(target, np.ndarray) else None)
    if a.device != b.device:
        raise ValueError(f"images on different devices: {a.device} and {b.device}")
    if a.shape != b.shape:
        raise ValueError(f"image sizes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return a.unsqueeze(0), b.unsqueeze(0)


def _crop(batch: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return batch
    height, width = batch.shape[-2:]
    if height <= 2 * border or width <= 2 * border:
        raise ValueError(f"image of {height}x{width} is too small for a {border}-pixel border crop")
    return batch[..., border:height - border, border:width - border]


def _check_batch(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected N x 3 x H x W, got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"batch shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.device != target.device:
        raise ValueError(f"tensors on different devices: {pred.device} and {target.device}")


CPU_TILE_ELEMENTS = 32767
"""On a CPU, PSNR and SSIM run per image, channel and band of rows, each band under this many
elements. That is below PyTorch's parallel grain size (32768), so every operation runs in the
calling thread on data that stays in cache: about twice as fast as whole images on one core,
and immune to thread oversubscription, which slows whole-image float64 SSIM by 5-10x on a busy
2-core machine. Other devices take whole batches."""


def _cpu_bands(shape: torch.Size, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(image, channel, first row, end row) of bands that cover N x C x H x W, consecutive bands
    sharing ``overlap`` rows, each band under CPU_TILE_ELEMENTS elements where the width allows."""
    n, channels, height, width = shape
    rows = max(8, CPU_TILE_ELEMENTS // width - overlap)
    for i in range(n):
        for c in range(channels):
            for top in range(0, height - overlap, rows):
                yield i, c, top, min(height - overlap, top + rows) + overlap


def _squared_error_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences per image (float64, shape N); exact integers for 8-bit inputs."""
    if a.dtype == torch.uint8 and b.dtype == torch.uint8:
        diff = a.to(torch.int32) - b.to(torch.int32)
        return diff.mul_(diff).sum(dim=(1, 2, 3), dtype=torch.int64).to(torch.float64)
    diff = a.to(torch.float64) - b.to(torch.float64)
    return diff.square_().sum(dim=(1, 2, 3))


def psnr_batch(pred: torch.Tensor, target: torch.Tensor, border: int = BORDER) -> torch.Tensor:
    """PSNR in dB of each image of two N x 3 x H x W batches in [0, 255]; float64, shape N.

    Identical images give ``inf``.
    """
    _check_batch(pred, target)
    a, b = _crop(pred, border), _crop(target, border)
    if a.device.type != "cpu":
        sse = _squared_error_sum(a, b)
    else:  # in bands, like SSIM: see CPU_TILE_ELEMENTS
        sse = torch.zeros(a.shape[0], dtype=torch.float64)
        for i, c, top, bottom in _cpu_bands(a.shape, overlap=0):
            sse[i] += _squared_error_sum(a[i:i + 1, c:c + 1, top:bottom], b[i:i + 1, c:c + 1, top:bottom])[0]
    mse = sse / (a.shape[1] * a.shape[2] * a.shape[3])
    return 10 * torch.log10(DATA_RANGE ** 2 / mse)


def gaussian_window_1d(sigma: float = GAUSSIAN_SIGMA, truncate: float = GAUSSIAN_TRUNCATE,
                       dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
                       ) -> torch.Tensor:
    """The normalised 1-D Gaussian of scipy's ``gaussian_filter`` (radius ``int(truncate*sigma+0.5)``)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _filter_valid(x: torch.Tensor, weights: list[float] | None, taps: int) -> torch.Tensor:
    """Separable 'valid' filtering over the last two dims as a sum of shifted slices.

    ``weights=None`` gives plain window sums (a box filter before the division), in the input's
    dtype: exact for integer tensors. Shifted-slice sums are several times faster on a CPU than
    float64 ``conv2d`` / ``avg_pool2d``, and run on any device.
    """
    for dim in (-1, -2):
        length = x.shape[dim] - taps + 1
        if weights is None:
            out = x.narrow(dim, 0, length).clone()
            for i in range(1, taps):
                out.add_(x.narrow(dim, i, length))
        else:
            out = x.narrow(dim, 0, length) * weights[0]
            for i in range(1, taps):
                out.add_(x.narrow(dim, i, length), alpha=weights[i])
        x = out
    return x


def _window_means(a: torch.Tensor, b: torch.Tensor, protocol: SsimProtocol
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Window means of a, b, a*a, b*b, a*b (float64) at the 'valid' positions.

    8-bit inputs are multiplied and, with the uniform window, summed exactly in int32 (49 * 255^2
    is far from its limit) and divided in float64: the numbers of float64 throughout with half
    the memory traffic. Other inputs are converted to float64 first.
    """
    integer = a.dtype == torch.uint8 and b.dtype == torch.uint8
    work = torch.int32 if integer else torch.float64
    a, b = a.to(work), b.to(work)
    weights = gaussian_window_1d().tolist() if protocol == "gaussian" else None

    def mean(x: torch.Tensor) -> torch.Tensor:
        if weights is None:
            sums = _filter_valid(x, None, PUBLISHED_WINDOW)
            return sums.to(torch.float64).div_(PUBLISHED_WINDOW * PUBLISHED_WINDOW)
        return _filter_valid(x.to(torch.float64), weights, len(weights))

    return mean(a), mean(b), mean(a * a), mean(b * b), mean(a * b)


def _ssim_map_sum(a: torch.Tensor, b: torch.Tensor, protocol: SsimProtocol, window: int) -> torch.Tensor:
    """Sum of the SSIM map over channels and 'valid' positions, per image (float64, shape N)."""
    ux, uy, uxx, uyy, uxy = _window_means(a, b, protocol)
    cov_norm = window * window / (window * window - 1.0) if protocol == "published" else 1.0
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    # SSIM = (2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2)), with
    # vx = cov_norm (uxx - ux^2), vy likewise, vxy = cov_norm (uxy - ux uy); in place where possible.
    ux_uy = ux * uy
    ux2, uy2 = ux * ux, uy * uy
    variances = uxx.add_(uyy).sub_(ux2).sub_(uy2).mul_(cov_norm).add_(c2)
    covariance = uxy.sub_(ux_uy).mul_(2 * cov_norm).add_(c2)
    numerator = ux_uy.mul_(2).add_(c1).mul_(covariance)
    denominator = ux2.add_(uy2).add_(c1).mul_(variances)
    return numerator.div_(denominator).sum(dim=(1, 2, 3))


def ssim_batch(pred: torch.Tensor, target: torch.Tensor, protocol: SsimProtocol = "published",
               border: int = BORDER) -> torch.Tensor:
    """SSIM of each image of two N x 3 x H x W batches in [0, 255]; float64, shape N.

    Per channel, the SSIM map over every position where the window fits entirely (scikit-image
    crops ``(win_size - 1) // 2`` pixels of its map for the same reason), averaged, then the mean
    over the three channels.
    """
    if protocol not in SSIM_PROTOCOLS:
        raise ValueError(f"unknown SSIM protocol {protocol!r}; choose one of {', '.join(SSIM_PROTOCOLS)}")
    _check_batch(pred, target)
    a, b = _crop(pred, border), _crop(target, border)
    window = PUBLISHED_WINDOW if protocol == "published" else 2 * int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5) + 1
    height, width = a.shape[-2:]
    if min(height, width) < window:
        raise ValueError(f"image of {height}x{width} (after the border crop) is smaller "
                         f"than the {window}x{window} SSIM window")
    out_h, out_w = height - window + 1, width - window + 1
    if a.device.type != "cpu":
        total = _ssim_map_sum(a, b, protocol, window)
    else:
        total = torch.zeros(a.shape[0], dtype=torch.float64)
        for i, c, top, bottom in _cpu_bands(a.shape, overlap=window - 1):
            total[i] += _ssim_map_sum(a[i:i + 1, c:c + 1, top:bottom], b[i:i + 1, c:c + 1, top:bottom],
                                      protocol, window)[0]
    return total / (a.shape[1] * out_h * out_w)


def psnr(pred: ImageLike, target: ImageLike, border: int = BORDER, layout: Layout = "auto") -> float:
    """PSNR in dB of one 8-bit RGB image against its reference, published protocol.

    See the module docstring for accepted inputs; identical images give ``inf``.
    """
    a, b = _pair(pred, target, layout)
    return float(psnr_batch(a, b, border=border)[0])


def ssim(pred: ImageLike, target: ImageLike, protocol: SsimProtocol = "published",
         border: int = BORDER, layout: Layout = "auto") -> float:
    """SSIM of one 8-bit RGB image against its reference (``protocol``: published or gaussian)."""
    a, b = _pair(pred, target, layout)
    return float(ssim_batch(a, b, protocol=protocol, border=border)[0])


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
    _check_batch(pred, target)
    a, b = _crop(pred, border), _crop(target, border)
    n, _, height, width = a.shape
    tile = CPU_TILE_ELEMENTS if a.device.type == "cpu" else DEVICE_TILE_PIXELS
    rows = max(1, tile // width)  # pointwise: bands need no overlap
    total = torch.zeros(n, dtype=torch.float64, device=a.device)
    for i in range(n):
        for top in range(0, height, rows):
            band = slice(top, min(height, top + rows))
            total[i] += _ciede2000_sum(a[i:i + 1, :, band], b[i:i + 1, :, band])[0]
    return total / (height * width)


def ciede2000(pred: ImageLike, target: ImageLike, border: int = BORDER, layout: Layout = "auto") -> float:
    """Mean CIEDE2000 colour difference of one 8-bit RGB image from its reference (lower is better)."""
    a, b = _pair(pred, target, layout)
    return float(ciede2000_batch(a, b, border=border)[0])


def published_script_average(values: list[float]) -> float:
    """What the published evaluation scripts print: the sum over N images divided by N - 1.

    This overstates the mean by the factor N / (N - 1); it is here only to compare with
    figures computed that way. Report :func:`true_mean` instead.
    """
    if len(values) < 2:
        return math.nan
    return math.fsum(values) / (len(values) - 1)


def true_mean(values: list[float]) -> float:
    """The arithmetic mean (``nan`` for no values)."""
    return math.fsum(values) / len(values) if values else math.nan
