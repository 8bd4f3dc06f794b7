"""The generator's forward pass tile by tile, exact, with bounded memory.

The instance normalisation of every global attention module (GAM) needs statistics of the whole
image, so :func:`tiled_forward` makes two passes over tiles. The first runs the encoder on each
tile (with a halo that covers its receptive field) and gathers, per skip GAM, the statistics of
its local term (for the norm) and, where its global vector matters, of its input (for the
global vector), plus the bottleneck features, which are small and are kept whole. The second
pass decodes each tile with a halo wide enough for the decoder's receptive field; the upsampling
layers use the whole image's sampling grid. The result equals ``generator(x)`` up to float
rounding.

The pass relies on the generator's layout (``uegan.models.generator``) and on the three parts of
every GAM (``GlobalAttentionBase``: ``local_term``, ``global_from_moments``, ``modulate``); it
never reads a GAM's weights, so a new kind of GAM tiles without a change here.
:func:`tiling_matches` checks a generator once against its own forward, and a generator whose
layers compute something else is run whole instead.
"""

from __future__ import annotations

import logging

import torch

from uegan.models.generator import DIVISOR, Generator
from uegan.models.layers import NORM_EPS, GlobalAttentionBase, std_from_variance

log = logging.getLogger(__name__)

DEFAULT_TILE = 512
ENCODER_HALO = 32  # receptive radius of the encoder (18 px), rounded up to a multiple of 16
DECODER_HALO = 64  # receptive radius of everything after the bottleneck (about 50 px)
Moments = tuple[torch.Tensor, torch.Tensor]


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


class RunningMoments:
    """Running per-channel mean and variance, in float64, shifted for numerical stability."""

    def __init__(self) -> None:
        self.count = 0
        self.shift: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    def add(self, values: torch.Tensor) -> None:
        """Add the values of one sample, C x ... (every position of every channel)."""
        flat = values.reshape(values.shape[0], -1).double()
        if self.shift is None:
            self.shift = flat.mean(dim=1, keepdim=True)
            self.total = torch.zeros_like(self.shift)
            self.squares = torch.zeros_like(self.shift)
        centred = flat - self.shift
        self.total += centred.sum(dim=1, keepdim=True)
        self.squares += (centred * centred).sum(dim=1, keepdim=True)
        self.count += flat.shape[1]

    def mean_var(self, unbiased: bool = False) -> Moments:
        """Per-channel mean and variance (biased, as the InstanceNorm uses, unless ``unbiased``)."""
        mean_centred = self.total / self.count
        var = (self.squares / self.count - mean_centred ** 2).clamp_min(0)
        if unbiased:
            var = var * self.count / max(self.count - 1, 1)
        return (mean_centred + self.shift).flatten(), var.flatten()


def tileable(generator: Generator) -> bool:
    """True when every skip GAM has the three parts :func:`tiled_forward` evaluates."""
    if not generator.config.local_residual:  # curve only: pointwise once the curves are known
        return True
    return all(isinstance(gam, GlobalAttentionBase) for gam in generator.skip_attention())


def _gam_on_tile(gam: GlobalAttentionBase, features: torch.Tensor, local_moments: Moments,
                 feature_moments: Moments | None) -> torch.Tensor:
    """A GAM on a tile, with the whole image's statistics."""
    local = gam.local_term(features)
    mean, var = local_moments
    normalised = (local - mean.to(local.dtype).view(1, -1, 1, 1)) \
        * torch.rsqrt(var + NORM_EPS).to(local.dtype).view(1, -1, 1, 1)
    if feature_moments is None:  # the GAM ignores its global vector
        return normalised
    feature_mean, feature_var = feature_moments
    g = gam.global_from_moments(feature_mean.to(features.dtype).view(1, -1, 1, 1),
                                std_from_variance(feature_var).to(features.dtype).view(1, -1, 1, 1))
    return gam.modulate(normalised, g)


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
        except Exception as error:  # noqa: BLE001 - an unexpected layout: fall back, never fail
            log.debug("tiled forward failed its check: %s", error)
            return False
    return bool((tiled - whole).abs().max() <= tolerance)


def _curve_only(generator: Generator, x: torch.Tensor, tile: int) -> torch.Tensor:
    """The curve-only generator: the whole image's curves, applied tile by tile."""
    logits = generator.curve.logits(x)
    out = torch.empty_like(x)
    for y0, y1 in _spans(x.shape[2], tile):
        for x0, x1 in _spans(x.shape[3], tile):
            out[:, :, y0:y1, x0:x1] = generator.curve.apply(x[:, :, y0:y1, x0:x1], logits)
    return out


def _encoder_pass(g: Generator, x: torch.Tensor, tile: int
                  ) -> tuple[list[Moments], list[Moments | None], torch.Tensor]:
    """Pass 1: per skip GAM the moments of its local term (and of its input, where its global
    vector matters), and the bottleneck input ``e5`` of the whole image."""
    _, _, height, width = x.shape
    gams = g.skip_attention()
    local_stats = [RunningMoments() for _ in gams]
    feature_stats = [RunningMoments() for _ in gams]
    e5_whole = None
    for y0, y1 in _spans(height, tile):
        for x0, x1 in _spans(width, tile):
            ry0, ry1 = _region(y0, y1, ENCODER_HALO, height)
            rx0, rx1 = _region(x0, x1, ENCODER_HALO, width)
            features = []
            for encoder in g.encoders():
                features.append(encoder(features[-1] if features else x[:, :, ry0:ry1, rx0:rx1]))
            for level, feature in enumerate(features):
                s = 2 ** level
                core = feature[:, :, (y0 - ry0) // s:(y1 - ry0) // s, (x0 - rx0) // s:(x1 - rx0) // s]
                if level < len(gams):
                    local_stats[level].add(gams[level].local_term(core)[0])
                    if not gams[level].global_branch_inert:
                        feature_stats[level].add(core[0])
                    continue
                if e5_whole is None:
                    e5_whole = core.new_empty(1, core.shape[1], height // DIVISOR, width // DIVISOR)
                e5_whole[:, :, y0 // DIVISOR:y1 // DIVISOR, x0 // DIVISOR:x1 // DIVISOR] = core
    local_moments = [s.mean_var() for s in local_stats]
    feature_moments = [s.mean_var(unbiased=True) if s.count else None for s in feature_stats]
    return local_moments, feature_moments, e5_whole


def _decode_tile(g: Generator, crop: torch.Tensor, origin: tuple[int, int], size: tuple[int, int],
                 local_moments: list[Moments], feature_moments: list[Moments | None],
                 bottleneck: torch.Tensor, curve_logits: torch.Tensor | None) -> torch.Tensor:
    """Pass 2 on one crop (a tile with its halo) whose top-left pixel is ``origin`` in an image
    of ``size``: the generator's output on the crop."""
    height, width = size
    gams = g.skip_attention()
    # references are dropped as soon as possible: a tile's activations bound the memory
    encoders = g.encoders()  # only those with a skip: the bottleneck comes from the first pass
    e1 = encoders[0](crop)
    feature, skips = e1, []
    for k, gam in enumerate(gams):
        if k:
            feature = encoders[k](feature)
        skips.append(_gam_on_tile(gam, feature, local_moments[k], feature_moments[k]))
    del feature
    previous, level = bottleneck, 4
    full_prev, start_prev = (height // DIVISOR, width // DIVISOR), (0, 0)
    for up, dec in g.decoder_stages():
        skip = skips.pop()
        level -= 1
        s = 2 ** level
        start = (origin[0] // s, origin[1] // s)
        # the 1x1 convolution commutes with the interpolation (weights sum to 1): run it first,
        # on the smaller map
        previous = up.conv(previous)
        previous = _lerp_upsample_axis(previous, 2, start_prev[0], full_prev[0], start[0],
                                       skip.shape[2])
        previous = _lerp_upsample_axis(previous, 3, start_prev[1], full_prev[1], start[1],
                                       skip.shape[3])
        joined = torch.cat([previous, skip], dim=1)
        del previous, skip
        previous = dec(joined)
        del joined
        full_prev, start_prev = (height // s, width // s), start
    base = crop if curve_logits is None else g.curve.apply(crop, curve_logits)
    return g.output(previous, e1, base)


@torch.inference_mode()
def tiled_forward(generator: Generator, x: torch.Tensor, tile: int = DEFAULT_TILE) -> torch.Tensor:
    """The generator's output on ``x`` (N x 3 x H x W in [-1, 1], sides multiples of 16),
    computed tile by tile with bounded memory; equal to ``generator(x)`` up to float rounding."""
    if x.shape[0] != 1:
        return torch.cat([tiled_forward(generator, sample[None], tile) for sample in x])
    if tile % DIVISOR:
        raise ValueError(f"tile must be a multiple of {DIVISOR}")
    g = generator
    if not g.config.local_residual:
        return _curve_only(g, x, tile)
    if not tileable(g):
        raise NotImplementedError("tiled inference needs GAMs derived from GlobalAttentionBase")
    _, _, height, width = x.shape
    local_moments, feature_moments, e5_whole = _encoder_pass(g, x, tile)
    bottleneck = g.bottleneck(e5_whole)  # the real module on the whole (small) map
    # curve variants: the tone curves come from the whole image's statistics, once
    curve_logits = g.curve.logits(x) if g.curve is not None else None
    out = torch.empty_like(x)
    for y0, y1 in _spans(height, tile):
        for x0, x1 in _spans(width, tile):
            ry0, ry1 = _region(y0, y1, DECODER_HALO, height)
            rx0, rx1 = _region(x0, x1, DECODER_HALO, width)
            result = _decode_tile(g, x[:, :, ry0:ry1, rx0:rx1], (ry0, rx0), (height, width),
                                  local_moments, feature_moments, bottleneck, curve_logits)
            out[:, :, y0:y1, x0:x1] = result[:, :, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
    return out
