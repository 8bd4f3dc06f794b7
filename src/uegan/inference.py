"""Enhancing photos with a trained UEGAN generator.

:class:`Enhancer` wraps a generator loaded from any checkpoint format and applies it to images
of any size:

- Faithful: images whose sides are multiples of 16 go through the generator unchanged
  (``x = 2 * p / 255 - 1`` in, ``floor(((y + 1) / 2).clamp(0, 1) * 255 + 0.5)`` out, as the
  published tester writes them). Other sides are reflect-padded at the bottom and right to the
  next multiple of 16 and cropped back; tiny images (a side under 16) too.
- Large photos, default mode: the generator runs at a working size (long side ``max_side``,
  768 by default: the scale of the photos the published model is trained and tested on, FiveK
  exports with a short edge of 512, so 512 x 768 and smaller run directly) and its effect is
  carried to full resolution by a local affine colour transform: a guided filter (He et al.)
  fits ``out = A(x) in + b(x)`` (3 x 3 matrix and offset per pixel) between the small input and
  the small output, and the smoothed coefficients are interpolated to full size (the "fast
  guided filter" of He & Sun) and applied in strips, so memory stays bounded.
- ``full_res=True``: the generator runs on the whole image. Above ``tile`` x ``tile`` x 4
  pixels it runs tile by tile and is still exact: the instance normalisation of every global
  attention module needs statistics of the whole image, so a first pass over tiles gathers
  them (and the bottleneck features, which are small) and a second pass decodes each tile with
  a halo wide enough to cover the receptive field; the upsampling layers use the whole image's
  sampling grid. The result equals the untiled forward up to float rounding.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uegan.errors import UserError
from uegan.models.generator import DIVISOR, Generator
from uegan.models.fast import skip_inert_attention, use_conv_first_upsample
from uegan.models.layers import NORM_EPS, GlobalAttention
from uegan.runtime import (autocast, channels_last_input, check_precision, compile_module,
                           configure_threads, to_channels_last)

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 768
DEFAULT_TILE = 512
# the local colour transform: window radius in working-size pixels and regularisation in [0, 1]
# units; chosen by the sweep of benchmarks/transfer_quality.py (benchmarks/RESULTS.md)
DEFAULT_GUIDE_RADIUS = 4
DEFAULT_GUIDE_EPS = 1e-5
STRIP_ROWS = 256
ENCODER_HALO = 32  # receptive radius of the encoder (18 px), rounded up to a multiple of 16
DECODER_HALO = 64  # receptive radius of everything after the bottleneck (about 50 px)


# ----------------------------------------------------------------------------------------------
# padding


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


# ----------------------------------------------------------------------------------------------
# exact tiled forward


def _lerp_upsample_axis(x: torch.Tensor, dim: int, in_start: int, in_full: int, out_start: int,
                        out_count: int) -> torch.Tensor:
    """Bilinear x2 upsampling (align_corners=True) along ``dim`` of a crop of a larger map.

    ``x`` holds rows ``in_start ..`` of a map with ``in_full`` rows; the result holds rows
    ``out_start .. out_start + out_count`` of the upsampled whole map (``2 * in_full`` rows).
    Rows the crop does not hold are clamped to its edge (only ever inside a halo).
    """
    out_full = 2 * in_full
    scale = (in_full - 1) / (out_full - 1) if out_full > 1 else 0.0
    source = torch.arange(out_start, out_start + out_count, dtype=torch.float32) * scale
    lower = source.floor().long()
    weight = (source - lower.float()).to(x.dtype)
    upper = torch.clamp(lower + 1, max=in_full - 1)
    last = x.shape[dim] - 1
    lower = torch.clamp(lower - in_start, 0, last).to(x.device)
    upper = torch.clamp(upper - in_start, 0, last).to(x.device)
    shape = [1] * x.ndim
    shape[dim] = out_count
    weight = weight.view(shape).to(x.device)
    a = x.index_select(dim, lower)
    b = x.index_select(dim, upper)
    return b.sub_(a).mul_(weight).add_(a)


def _spans(size: int, tile: int) -> list[tuple[int, int]]:
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def _region(start: int, stop: int, halo: int, size: int) -> tuple[int, int]:
    return max(0, start - halo), min(size, stop + halo)


class _Stats:
    """Running per-channel mean and (biased) variance, in float64, shifted for stability."""

    def __init__(self):
        self.count = 0
        self.shift: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    def add(self, values: torch.Tensor) -> None:  # values: C x ... (one sample)
        flat = values.reshape(values.shape[0], -1).double()
        if self.shift is None:
            self.shift = flat.mean(dim=1, keepdim=True)
            self.total = torch.zeros_like(self.shift)
            self.squares = torch.zeros_like(self.shift)
        centred = flat - self.shift
        self.total += centred.sum(dim=1, keepdim=True)
        self.squares += (centred * centred).sum(dim=1, keepdim=True)
        self.count += flat.shape[1]

    def mean_var(self, unbiased: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mean_centred = self.total / self.count
        var = (self.squares / self.count - mean_centred ** 2).clamp_min(0)
        if unbiased:
            var = var * self.count / max(self.count - 1, 1)
        return (mean_centred + self.shift).flatten(), var.flatten()


def _is_modulated(gam) -> bool:
    return type(gam).__name__ == "ModulatedGlobalAttention" and hasattr(gam, "scale_weight")


def tileable(generator: Generator) -> bool:
    """True when every skip GAM is of a kind :func:`tiled_forward` knows how to split."""
    if not generator.config.local_residual:  # curve only: pointwise once the curves are known
        return True
    return all(isinstance(gam, GlobalAttention) or _is_modulated(gam)
               for gam in (generator.ga1, generator.ga2, generator.ga3, generator.ga4))


def _local_fuse(gam, features: torch.Tensor) -> torch.Tensor:
    """The part of a GAM's ``fuse`` convolution that varies over the image: W_x * features.

    The rest (the global vector's term and the bias) is a per-channel constant that the
    instance normalisation removes exactly (spec, "Findings"), so it is left out here.
    """
    weight_x = gam.fuse.weight[:, :gam.channels]
    return F.conv2d(features, weight_x)


def _normalise(local: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    mean = mean.to(local.dtype).view(1, -1, 1, 1)
    scale = torch.rsqrt(var + NORM_EPS).to(local.dtype).view(1, -1, 1, 1)
    return (local - mean) * scale


def _gam_on_tile(gam, features: torch.Tensor, local_moments, feature_moments) -> torch.Tensor:
    """A GAM on a tile, with the whole image's statistics."""
    normalised = _normalise(_local_fuse(gam, features), *local_moments)
    if not _is_modulated(gam):  # the published GAM: its global branch is inert
        return normalised
    # the module's own global branch, on two pixels per channel whose mean and unbiased
    # variance are the whole image's: m -+ sqrt(v / 2)
    mean, var = feature_moments
    spread = torch.sqrt(var / 2)
    probe = torch.stack([mean - spread, mean + spread], dim=-1)[None, :, None, :]
    vector = gam.global_vector(probe.to(features.dtype)).reshape(1, -1)
    scale = F.linear(vector, gam.scale_weight, gam.scale_bias)[:, :, None, None]
    shift = F.linear(vector, gam.shift_weight, gam.shift_bias)[:, :, None, None]
    return normalised * (1 + scale) + shift


def tiling_matches(generator: Generator, device: str | torch.device = "cpu",
                   tolerance: float = 1e-4) -> bool:
    """Check :func:`tiled_forward` against the generator's own forward on a small random image
    (2 x 3 tiles of 64): a generator whose layers differ from what the tiled pass assumes is
    caught here and runs untiled instead."""
    if not tileable(generator):
        return False
    rng = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, 128, 192, generator=rng) * 2 - 1).to(device)
    with torch.inference_mode():
        whole = generator(x)
        try:
            tiled = tiled_forward(generator, x, tile=64)
        except Exception as error:  # an unexpected layout: fall back, never fail
            log.debug("tiled forward failed its check: %s", error)
            return False
    return bool((tiled - whole).abs().max() <= tolerance)


@torch.inference_mode()
def tiled_forward(generator: Generator, x: torch.Tensor, tile: int = DEFAULT_TILE) -> torch.Tensor:
    """The generator's output on ``x`` (1 x 3 x H x W in [-1, 1], sides multiples of 16),
    computed tile by tile with bounded memory; equal to ``generator(x)`` up to float rounding."""
    if x.shape[0] != 1:
        return torch.cat([tiled_forward(generator, sample[None], tile) for sample in x])
    if tile % DIVISOR:
        raise ValueError(f"tile must be a multiple of {DIVISOR}")
    g = generator
    _, _, height, width = x.shape
    rows, cols = _spans(height, tile), _spans(width, tile)
    if not g.config.local_residual:  # curve only: the whole image's curves, applied tile by tile
        logits = g.curve.logits(x)
        out = torch.empty_like(x)
        for y0, y1 in rows:
            for x0, x1 in cols:
                out[:, :, y0:y1, x0:x1] = g.curve.apply(x[:, :, y0:y1, x0:x1], logits)
        return out
    gams = [g.ga1, g.ga2, g.ga3, g.ga4]
    if not tileable(g):
        raise NotImplementedError("tiled inference does not know this generator's attention")
    stats = [_Stats() for _ in gams]
    feature_stats = [_Stats() for _ in gams]
    e5_whole: torch.Tensor | None = None

    # pass 1: encoder over tiles: statistics of each GAM's local term, and e5 whole
    for y0, y1 in rows:
        for x0, x1 in cols:
            ry0, ry1 = _region(y0, y1, ENCODER_HALO, height)
            rx0, rx1 = _region(x0, x1, ENCODER_HALO, width)
            features = [g.enc1(x[:, :, ry0:ry1, rx0:rx1])]
            for encoder in (g.enc2, g.enc3, g.enc4, g.enc5):
                features.append(encoder(features[-1]))
            for level, feature in enumerate(features):
                s = 2 ** level
                core = feature[:, :, (y0 - ry0) // s:(y1 - ry0) // s, (x0 - rx0) // s:(x1 - rx0) // s]
                if level < 4:
                    stats[level].add(_local_fuse(gams[level], core)[0])
                    if _is_modulated(gams[level]):
                        feature_stats[level].add(core[0])
                else:
                    if e5_whole is None:
                        e5_whole = core.new_empty(1, core.shape[1], height // 16, width // 16)
                    e5_whole[:, :, y0 // 16:y1 // 16, x0 // 16:x1 // 16] = core
    moments = [s.mean_var() for s in stats]
    feature_moments = [s.mean_var(unbiased=True) if s.count else None for s in feature_stats]
    bottleneck = g.bottleneck(e5_whole)  # the real module on the whole (small) map
    # curve variants: the tone curves come from the whole image's statistics, once
    curve_logits = g.curve.logits(x) if getattr(g, "curve", None) is not None else None

    # pass 2: decoder over tiles, each with a halo that covers the receptive field
    out = torch.empty_like(x)
    for y0, y1 in rows:
        for x0, x1 in cols:
            ry0, ry1 = _region(y0, y1, DECODER_HALO, height)
            rx0, rx1 = _region(x0, x1, DECODER_HALO, width)
            crop = x[:, :, ry0:ry1, rx0:rx1]
            # references are dropped as soon as possible: a tile's activations bound the memory
            e1 = g.enc1(crop)
            skips = [_gam_on_tile(gams[0], e1, moments[0], feature_moments[0])]
            feature = e1
            for k, encoder in enumerate((g.enc2, g.enc3, g.enc4), start=1):
                feature = encoder(feature)
                skips.append(_gam_on_tile(gams[k], feature, moments[k], feature_moments[k]))
            del feature
            previous, level = bottleneck, 4
            full_prev = (height // 16, width // 16)
            start_prev = (0, 0)
            for up, dec in ((g.up1, g.dec1), (g.up2, g.dec2), (g.up3, g.dec3), (g.up4, g.dec4)):
                skip = skips.pop()
                level -= 1
                s = 2 ** level
                start = (ry0 // s, rx0 // s)
                # the 1x1 convolution commutes with the interpolation (weights sum to 1): run
                # it first, on the smaller map
                previous = up.conv(previous)
                previous = _lerp_upsample_axis(previous, 2, start_prev[0], full_prev[0], start[0],
                                               skip.shape[2])
                previous = _lerp_upsample_axis(previous, 3, start_prev[1], full_prev[1], start[1],
                                               skip.shape[3])
                joined = torch.cat([previous, skip], dim=1)
                del previous, skip
                previous = dec(joined)
                del joined
                full_prev = (height // s, width // s)
                start_prev = start
            product = previous * e1
            del previous, e1
            base = crop if curve_logits is None else g.curve.apply(crop, curve_logits)
            result = torch.clamp(g.dec5(product) + base, -1.0, 1.0)
            del product
            out[:, :, y0:y1, x0:x1] = result[:, :, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
    return out


# ----------------------------------------------------------------------------------------------
# guided-filter transfer


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


# ----------------------------------------------------------------------------------------------
# the enhancer


def quantize(values: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """[0, 1] floats -> integers as the published tester rounds: floor(v * max + 0.5)."""
    if dtype == np.uint16:
        result = values.clamp(0.0, 1.0).mul_(65535.0).add_(0.5).floor_()
        return result.to(torch.int32).cpu().numpy().astype(np.uint16)
    result = values.clamp(0.0, 1.0).mul_(255.0).add_(0.5).floor_()
    return result.to(torch.uint8).cpu().numpy()


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_float_chw(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 / uint16 / float in [0, 1] -> 3 x H x W float32 (a view where possible)."""
    with warnings.catch_warnings():  # read-only arrays (from PIL) are fine: never written to
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1)
    if rgb.dtype == np.uint8:
        return tensor.float().div_(255.0)
    if rgb.dtype == np.uint16:
        return tensor.float().div_(65535.0)
    return tensor.float()


class Enhancer:
    """A generator ready to enhance images of any size.

    ``Enhancer.load(checkpoint, device="cpu")`` reads any supported checkpoint (published
    ``.pth``, a training checkpoint of this project, a safetensors export). Calling the enhancer
    on an image returns the same kind of image:

    - a PIL image -> a PIL image (RGB; alpha kept untouched when the input has one);
    - a numpy array H x W x 3 (or x 4 with alpha, or H x W gray), ``uint8``, ``uint16`` or float
      in [0, 1] -> the same dtype, H x W x 3 (x 4 with alpha);
    - a torch tensor 3 x H x W or N x 3 x H x W, float in [0, 1] or ``uint8`` -> the same shape,
      dtype and device.

    ``max_side``: long side of the working size (``None``: always full resolution);
    ``full_res``: run the generator on the whole image whatever its size (tiled above
    ``tile`` x ``tile`` x 4 pixels, exact).
    ``acceleration``: an optional ``uegan.inference.InferenceAcceleration`` (torch.compile,
    exact fp32 rewrites, bf16/fp16 autocast) for the untiled forward pass; the generator is
    prepared in place.
    """

    def __init__(self, generator: Generator, device: str | torch.device = "cpu", *,
                 max_side: int | None = DEFAULT_MAX_SIDE, full_res: bool = False,
                 tile: int = DEFAULT_TILE, guide_radius: int = DEFAULT_GUIDE_RADIUS,
                 guide_eps: float = DEFAULT_GUIDE_EPS, variant: str | None = None,
                 source_format: str | None = None, acceleration: Any = None):
        if max_side is not None and max_side < DIVISOR:
            raise UserError(f"max side {max_side} is too small (at least {DIVISOR})")
        if tile < 4 * DIVISOR or tile % DIVISOR:
            raise UserError(f"tile {tile} must be a multiple of {DIVISOR}, at least {4 * DIVISOR}")
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self._forward = self.generator
        if acceleration is not None:

            self._forward = prepare_generator_for_inference(self.generator, acceleration)
        self.max_side = max_side
        self.full_res = full_res
        self.tile = tile
        self.guide_radius = guide_radius
        self.guide_eps = guide_eps
        self.variant = variant
        self.source_format = source_format
        self._tiling_ok: bool | None = None  # checked once, when a tiled forward is first needed

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu",
             **options: Any) -> "Enhancer":
        from uegan.checkpoints import load_generator

        loaded = load_generator(checkpoint, device)
        return cls(loaded.generator, device, variant=loaded.variant,
                   source_format=loaded.source_format, **options)

    # -- the generator on [0, 1] images ----------------------------------------------------------

    @torch.inference_mode()
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The generator on N x 3 x H x W in [0, 1] (any size): padded, run, cropped, in [0, 1]."""
        _, _, height, width = x.shape
        padded_h, padded_w = padded_size(height, width)
        x = pad_reflect(x.to(self.device, torch.float32), padded_h, padded_w)
        x = 2 * x - 1
        if padded_h * padded_w > 4 * self.tile * self.tile and self._tiling_checked():
            y = tiled_forward(self.generator, x, self.tile)
        else:
            y = self._forward(x)
        return ((y[:, :, :height, :width] + 1) / 2).clamp(0, 1)

    def _tiling_checked(self) -> bool:
        if self._tiling_ok is None:
            self._tiling_ok = tiling_matches(self.generator, self.device)
            if not self._tiling_ok:
                log.warning("this generator cannot be split into tiles exactly; running large "
                            "images whole (more memory)")
        return self._tiling_ok

    def uses_transfer(self, height: int, width: int) -> bool:
        return (not self.full_res and self.max_side is not None
                and max(height, width) > self.max_side)

    @torch.inference_mode()
    def fit_transfer(self, image: torch.Tensor) -> LocalAffineTransfer:
        """Run the generator at working size on 1 x 3 x H x W in [0, 1] and fit the transfer."""
        _, _, height, width = image.shape
        small_h, small_w = working_size(height, width, self.max_side)
        small = F.interpolate(image.to(self.device, torch.float32), size=(small_h, small_w),
                              mode="bilinear", antialias=True, align_corners=False)
        enhanced = self.generate(small)
        coefficients = fit_local_affine(small, enhanced, self.guide_radius, self.guide_eps)
        return LocalAffineTransfer(coefficients, height, width)

    @torch.inference_mode()
    def enhance_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W float in [0, 1] -> the enhanced images, same shape, on the same device."""
        _, _, height, width = x.shape
        if not self.uses_transfer(height, width):
            return self.generate(x).to(x.device)
        results = []
        for sample in x:
            transfer = self.fit_transfer(sample[None])
            rows = [transfer.apply(sample[:, r0:r0 + STRIP_ROWS].float(), r0).clamp(0, 1).to(x.device)
                    for r0 in range(0, height, STRIP_ROWS)]
            results.append(torch.cat(rows, dim=1))
        return torch.stack(results)

    @torch.inference_mode()
    def enhance_array(self, rgb: np.ndarray, out_dtype: np.dtype | type | None = None
                      ) -> np.ndarray:
        """H x W x 3 (uint8, uint16 or float in [0, 1]) -> H x W x 3 of ``out_dtype`` (default:
        the input's). Large photos are processed in strips: memory stays near two copies of the
        image as float."""
        out_dtype = np.dtype(out_dtype or rgb.dtype)
        height, width = rgb.shape[:2]
        image = _to_float_chw(rgb)[None]
        if self.uses_transfer(height, width):
            transfer = self.fit_transfer(image)
            out = np.empty((height, width, 3), dtype=out_dtype)
            for r0 in range(0, height, STRIP_ROWS):
                strip = transfer.apply(image[0, :, r0:r0 + STRIP_ROWS], r0)
                out[r0:r0 + STRIP_ROWS] = self._from_float(strip.permute(1, 2, 0), out_dtype)
            return out
        result = self.generate(image)[0]
        del image
        out = np.empty((height, width, 3), dtype=out_dtype)
        for r0 in range(0, height, STRIP_ROWS):
            out[r0:r0 + STRIP_ROWS] = self._from_float(
                result[:, r0:r0 + STRIP_ROWS].permute(1, 2, 0), out_dtype)
        return out

    @staticmethod
    def _from_float(values: torch.Tensor, dtype: np.dtype) -> np.ndarray:
        if dtype in (np.uint8, np.uint16):
            return quantize(values, dtype)
        return values.clamp(0, 1).cpu().numpy().astype(dtype)

    # -- any kind of image -------------------------------------------------------------------------

    def __call__(self, image: Any) -> Any:
        from PIL import Image

        if isinstance(image, Image.Image):
            return self._enhance_pil(image)
        if isinstance(image, np.ndarray):
            return self._enhance_numpy(image)
        if isinstance(image, torch.Tensor):
            return self._enhance_torch(image)
        raise TypeError(f"cannot enhance a {type(image).__name__}: pass a PIL image, a numpy "
                        f"array or a torch tensor")

    def _enhance_pil(self, image):
        from PIL import Image

        has_alpha = image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info)
        alpha = image.convert("RGBA").getchannel("A") if has_alpha else None
        rgb = np.asarray(image.convert("RGB"))
        result = Image.fromarray(self.enhance_array(rgb, np.uint8), "RGB")
        if alpha is not None:
            result.putalpha(alpha)
        return result

    def _enhance_numpy(self, array: np.ndarray) -> np.ndarray:
        if array.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise TypeError(f"unsupported array dtype {array.dtype} (uint8, uint16 or float)")
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
            raise ValueError(f"expected an H x W x 3 image (or x 4, or H x W), got {array.shape}")
        alpha = array[..., 3:] if array.shape[-1] == 4 else None
        rgb = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
        result = self.enhance_array(np.ascontiguousarray(rgb), array.dtype)
        return np.concatenate([result, alpha], axis=-1) if alpha is not None else result

    def _enhance_torch(self, tensor: torch.Tensor) -> torch.Tensor:
        batched = tensor.ndim == 4
        if tensor.ndim not in (3, 4) or tensor.shape[-3] != 3:
            raise ValueError(f"expected 3 x H x W or N x 3 x H x W, got {tuple(tensor.shape)}")
        x = tensor if batched else tensor[None]
        if tensor.dtype == torch.uint8:
            y = self.enhance_tensor(x.float() / 255.0)
            y = torch.floor(y * 255.0 + 0.5).to(torch.uint8)
        elif tensor.is_floating_point():
            y = self.enhance_tensor(x.float()).to(tensor.dtype)
        else:
            raise TypeError(f"unsupported tensor dtype {tensor.dtype} (float in [0, 1] or uint8)")
        y = y.to(tensor.device)
        return y if batched else y[0]


# ---------------------------------------------------------------------------------------------
# speed-ups of the forward pass



@dataclass(frozen=True)
class InferenceAcceleration:
    """Speed-ups of the generator's forward pass for enhancement (defaults: none)."""

    compile: bool = False
    channels_last: bool = False
    conv_first_upsample: bool = False
    skip_inert_gam: bool = False
    precision: str = "fp32"
    threads: int | None = None
    dynamic: bool | None = False      # None: a shape-generic graph after the second size
    freeze_weights: bool = True       # with compile: weights as graph constants (inductor freezing)
    compile_mode: str | None = None
    cache_dir: str | None = None

    @classmethod
    def fast(cls, **overrides: Any) -> "InferenceAcceleration":
        """Every fp32 option that pays on this project's CPU measurements (benchmarks/RESULTS.md)."""
        values: dict[str, Any] = dict(compile=True, conv_first_upsample=True, skip_inert_gam=True)
        values.update(overrides)
        return cls(**values)


class AcceleratedGenerator(nn.Module):
    """Wraps a prepared generator: inputs to the chosen memory format, forward under autocast,
    output back to float32 and the standard (contiguous) layout.

    Attribute access falls through to the wrapped generator (``config``, ``ga1`` ... so that
    code that walks the generator's modules, such as tiled enhancement, keeps working).
    """

    def __init__(self, generator: nn.Module, options: InferenceAcceleration):
        super().__init__()
        self.generator = generator
        self.options = options

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["generator"], name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = channels_last_input(x, self.options.channels_last)
        with autocast(self.options.precision, x.device.type):
            y = self.generator(x)
        return y.to(dtype).contiguous()


def prepare_generator_for_inference(generator: nn.Module,
                                    options: InferenceAcceleration = InferenceAcceleration()
                                    ) -> nn.Module:
    """``generator`` (modified in place: eval mode, module swaps, compile) behind a small
    wrapper that applies the memory format and the precision. Its parameters are shared, so
    the generator must not be trained afterwards (the compiled graph holds frozen weights).
    """
    configure_threads(options.threads)
    check_precision(options.precision)
    generator.eval()
    if options.conv_first_upsample:
        use_conv_first_upsample(generator)
    if options.skip_inert_gam:
        skip_inert_attention(generator)
    if options.channels_last:
        to_channels_last(generator)
    if options.compile:
        compile_module(generator, mode=options.compile_mode, dynamic=options.dynamic,
                       freezing=options.freeze_weights, cache_dir=options.cache_dir)
    if not options.channels_last and options.precision == "fp32":
        return generator
    return AcceleratedGenerator(generator, options)
