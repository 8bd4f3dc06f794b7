"""A global tone curve per colour channel, predicted from the whole image's statistics.

The published generator sees an image only through instance-normalised features (every GAM ends
in an InstanceNorm that removes per-channel constants, and its global branch is inert), so a
photo's overall exposure and colour cast reach its output only indirectly. :class:`GlobalCurve`
gives the generator that information directly, and spends it on the kind of edit that cannot
follow texture: one monotone curve per RGB channel, the same for every pixel.

    statistics s  = per channel: mean, standard deviation and a 16-bin soft histogram of the
                    input in [0, 1]                                     (3 x 18 numbers)
    logits l      = mlp(s)                                              (3 x K)
    slopes        = K * softmax(l) per channel                          (mean slope 1)
    curve_c(v)    = piecewise linear through (0, 0), (k / K, sum of the first k slopes / K), ..., (1, 1)

The curve is monotone and maps 0 to 0 and 1 to 1 whatever the network predicts. The MLP's last
layer starts at zero, so a new module is the identity curve on every image: ``uegan-curve`` starts
as the identity and ``uegan-charbonnier-curve`` as the published generator. The MLP keeps PyTorch's default initialisation
(``own_initialisation``): the published orthogonal init with gain 0.02 would make the curve
almost blind to the statistics it is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uegan.models.layers import LEAKY_SLOPE

HISTOGRAM_BINS = 16
HIDDEN = 64
STATISTICS_PER_CHANNEL = 2 + HISTOGRAM_BINS


def image_statistics(v: torch.Tensor, bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> N x 3 x (2 + bins): mean, std and a soft (triangular-kernel)
    histogram per channel, each bin the fraction of pixels near its centre (rows sum to 1)."""
    flat = v.flatten(2)
    mean = flat.mean(dim=2, keepdim=True)
    std = flat.std(dim=2, unbiased=False, keepdim=True)
    # one bin at a time: memory stays at a few copies of the image, even for 24 MP photos
    histogram = torch.stack([
        (1.0 - (flat - k / (bins - 1)).abs() * (bins - 1)).clamp_min(0.0).mean(dim=2)
        for k in range(bins)], dim=2)
    return torch.cat([mean, std, histogram], dim=2)


def apply_curves(v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Apply one monotone piecewise-linear curve per channel.

    v: N x 3 x H x W in [0, 1]; logits: N x 3 x K. Knot k sits at k / K; the curve's slope on
    segment k is ``K * softmax(logits)_k``, so the curve runs from (0, 0) to (1, 1).
    """
    knots = logits.shape[-1]
    increments = torch.softmax(logits, dim=-1)                                # N x 3 x K, sum 1
    starts = F.pad(torch.cumsum(increments, dim=-1), (1, 0))[..., :knots]    # value at each knot
    position = v.clamp(0.0, 1.0).flatten(2) * knots                          # N x 3 x HW
    segment = position.detach().floor().clamp(0, knots - 1).long()
    fraction = position - segment
    value = starts.gather(2, segment) + increments.gather(2, segment) * fraction
    return value.view_as(v)


class GlobalCurve(nn.Module):
    """Predicts and applies one tone curve per RGB channel from the image's own statistics."""

    own_initialisation = True  # uegan.models.init.init_orthogonal leaves this module alone

    def __init__(self, knots: int = 16, hidden: int = HIDDEN):
        super().__init__()
        self.knots = knots
        # the random draws leave the global random state as it was, so that with the same seed
        # every other layer of the generator starts from the same weights with or without a curve
        with torch.random.fork_rng(devices=[]):
            self.mlp = nn.Sequential(
                nn.Linear(3 * STATISTICS_PER_CHANNEL, hidden),
                nn.LeakyReLU(LEAKY_SLOPE),
                nn.Linear(hidden, hidden),
                nn.LeakyReLU(LEAKY_SLOPE),
                nn.Linear(hidden, 3 * knots),
            )
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """PyTorch's default init for the hidden layers, zero for the last: identity curves."""
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x knots curve logits for images ``x`` in [-1, 1]."""
        statistics = image_statistics((x + 1.0) / 2.0)
        return self.mlp(statistics.flatten(1)).view(x.shape[0], 3, self.knots)

    @staticmethod
    def apply(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The curves applied to ``x`` in [-1, 1]; the result is in [-1, 1] too."""
        return apply_curves((x + 1.0) / 2.0, logits) * 2.0 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.logits(x))
