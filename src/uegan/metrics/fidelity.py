"""PSNR and SSIM (both SSIM protocols) of 8-bit RGB images, in float64 (see :mod:`uegan.metrics`)."""

from __future__ import annotations

import torch

from uegan.metrics import protocol as _protocol  # module attributes, so tests can patch them
from uegan.metrics.protocol import (BORDER, DATA_RANGE, GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE, K1, K2,
                                    PUBLISHED_WINDOW, SSIM_PROTOCOLS, ImageLike, Layout, SsimProtocol,
                                    check_batch, crop_border, as_pair)


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
    check_batch(pred, target)
    a, b = crop_border(pred, border), crop_border(target, border)
    if a.device.type != "cpu":
        sse = _squared_error_sum(a, b)
    else:  # in bands, like SSIM: see CPU_TILE_ELEMENTS
        sse = torch.zeros(a.shape[0], dtype=torch.float64)
        for i, c, top, bottom in _protocol.cpu_bands(a.shape, overlap=0):
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
    check_batch(pred, target)
    a, b = crop_border(pred, border), crop_border(target, border)
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
        for i, c, top, bottom in _protocol.cpu_bands(a.shape, overlap=window - 1):
            total[i] += _ssim_map_sum(a[i:i + 1, c:c + 1, top:bottom], b[i:i + 1, c:c + 1, top:bottom],
                                      protocol, window)[0]
    return total / (a.shape[1] * out_h * out_w)


def psnr(pred: ImageLike, target: ImageLike, border: int = BORDER, layout: Layout = "auto") -> float:
    """PSNR in dB of one 8-bit RGB image against its reference, published protocol.

    See the module docstring for accepted inputs; identical images give ``inf``.
    """
    a, b = as_pair(pred, target, layout)
    return float(psnr_batch(a, b, border=border)[0])


def ssim(pred: ImageLike, target: ImageLike, protocol: SsimProtocol = "published",
         border: int = BORDER, layout: Layout = "auto") -> float:
    """SSIM of one 8-bit RGB image against its reference (``protocol``: published or gaussian)."""
    a, b = as_pair(pred, target, layout)
    return float(ssim_batch(a, b, protocol=protocol, border=border)[0])
