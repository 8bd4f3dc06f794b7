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

Inputs: ``numpy.ndarray`` of shape H x W x 3 (uint8), or ``torch.Tensor`` of shape H x W x 3 or
3 x H x W, uint8 or floating point holding values in [0, 255] (normally whole numbers, e.g. from
:func:`quantize`). Layout is decided by which end has size 3 (``layout=`` overrides it when both
do). Tensors are evaluated on their own device; both inputs must share it. Batched tensors
(N x 3 x H x W) go to :func:`psnr_batch` / :func:`ssim_batch`, which return one value per image.

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

BORDER = 4
"""Pixels cropped from every border before PSNR and SSIM (published protocol)."""
DATA_RANGE = 255.0
K1 = 0.01
K2 = 0.03
PUBLISHED_WINDOW = 7
GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5  # scipy/scikit-image default: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_PROTOCOLS: tuple[str, ...] = ("published", "gaussian")


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
