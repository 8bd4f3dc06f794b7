"""The published FiveK evaluation protocol's shared pieces: constants, 8-bit quantisation,
input layouts, border crop, CPU bands, and the two ways of averaging over images."""

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


def as_pair(pred: ImageLike, target: ImageLike, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    device = next((x.device for x in (pred, target) if isinstance(x, torch.Tensor)), None)
    a = to_chw(pred, layout, device=device if isinstance(pred, np.ndarray) else None)
    b = to_chw(target, layout, device=device if isinstance(target, np.ndarray) else None)
    if a.device != b.device:
        raise ValueError(f"images on different devices: {a.device} and {b.device}")
    if a.shape != b.shape:
        raise ValueError(f"image sizes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return a.unsqueeze(0), b.unsqueeze(0)


def crop_border(batch: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return batch
    height, width = batch.shape[-2:]
    if height <= 2 * border or width <= 2 * border:
        raise ValueError(f"image of {height}x{width} is too small for a {border}-pixel border crop")
    return batch[..., border:height - border, border:width - border]


def check_batch(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected N x 3 x H x W, got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"batch shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.device != target.device:
        raise ValueError(f"tensors on different devices: {pred.device} and {target.device}")


CPU_TILE_ELEMENTS = 32767
"""On a CPU, PSNR and SSIM run per image, channel and band of rows, each band under this many
elements. That is below PyTorch's parallel grain size (32768), so every operation runs in the
calling thread on data that stays in cache, and a busy machine's other threads cannot
oversubscribe it (figures: benchmarks/RESULTS.md). Other devices take whole batches."""


def cpu_bands(shape: torch.Size, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(image, channel, first row, end row) of bands that cover N x C x H x W, consecutive bands
    sharing ``overlap`` rows, each band under CPU_TILE_ELEMENTS elements where the width allows."""
    n, channels, height, width = shape
    rows = max(8, CPU_TILE_ELEMENTS // width - overlap)
    for i in range(n):
        for c in range(channels):
            for top in range(0, height - overlap, rows):
                yield i, c, top, min(height - overlap, top + rows) + overlap


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
