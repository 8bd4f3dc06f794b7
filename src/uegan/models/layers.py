"""Building blocks of the UEGAN generator: reflect-padded convolutions, the global attention
module (GAM) and squeeze-and-excitation (SE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
GAM_STD_EPS = 1e-5
NORM_EPS = 1e-5


def reflect_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = True) -> nn.Conv2d:
    """A convolution that reflect-pads by (k - 1) / 2 pixels and then convolves unpadded.

    ``padding_mode="reflect"`` is exactly ``F.pad(x, mode="reflect")`` followed by an unpadded
    convolution, in one module (one key per parameter: ``weight``, ``bias``).
    """
    padding = (kernel_size - 1) // 2
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     padding_mode="reflect" if padding else "zeros", bias=bias)


class ConvBlock(nn.Module):
    """The paper's basic block: reflect-pad, convolution with bias, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = reflect_conv(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), LEAKY_SLOPE)


class Upsample(nn.Module):
    """Bilinear x2 upsampling (align_corners=True), then a 1x1 convolution with bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv(x)


class ConvFirstUpsample(Upsample):
    """:class:`Upsample` with the 1x1 convolution run before the bilinear upsampling (an exact
    rewrite for speed, ``uegan.models.fast``).

    Both are linear and the bilinear weights of every output pixel sum to 1 (align_corners
    included), so ``conv(up(x)) == up(conv(x))``, bias included, up to rounding; the
    convolution then runs on a quarter of the pixels, and the upsampling on half the channels.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=True)


def std_from_variance(unbiased_var: torch.Tensor) -> torch.Tensor:
    """The GAM's channel "std": sqrt(unbiased variance + 1e-5)."""
    return torch.sqrt(unbiased_var + GAM_STD_EPS)


def channel_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: spatial mean and sqrt(unbiased variance + 1e-5), as N x C x 1 x 1."""
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=True, keepdim=True)
    return mean, std_from_variance(var)


class GlobalAttentionBase(nn.Module):
    """What every global attention module (GAM) of the generator computes, in three parts:

        out = modulate(InstanceNorm(local_term(x)), global_vector(x))

    - ``local_term(x)``: a per-pixel linear map of ``x`` (no bias: the norm would remove it);
    - ``global_vector(x)``: N x c, a function of the per-channel mean and std of ``x`` only
      (:func:`channel_mean_std`), evaluated by ``global_from_moments``;
    - ``modulate(normalised, g)``: how the global vector acts on the normalised features.

    The rest of the package asks a GAM for these parts instead of reading its weights: tiled
    inference (``uegan.models.tiling``) computes the norm's and the channel statistics over the
    whole image and evaluates the parts tile by tile; the audit (``uegan.apps.audit``) asks
    :meth:`global_entries` which parameter entries belong to the global branch, and
    :meth:`relu_hidden_layer` which layer feeds hidden ReLU units. A new kind of GAM subclasses
    this and registers itself in ``uegan.models.generator.GAM_KINDS``.
    """

    channels: int
    # True when ``modulate`` ignores the global vector (the published GAM: its branch is inert)
    global_branch_inert: bool = False

    def add_global_mlp(self, channels: int) -> None:
        """The global branch's bottleneck, as the paper has it: the channel [mean, std] (2c)
        through 1x1 convolutions to c/8 and back to c (``reduce``, ``expand``)."""
        self.channels = channels
        self.reduce = nn.Conv2d(2 * channels, channels // 8, 1, bias=False)
        self.expand = nn.Conv2d(channels // 8, channels, 1, bias=False)

    def local_term(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def global_from_moments(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """N x c global vector from the channel ``mean`` and ``std`` (N x c x 1 x 1 each)."""
        raise NotImplementedError

    def modulate(self, normalised: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def global_vector(self, x: torch.Tensor) -> torch.Tensor:
        """N x c: the global branch on the channel statistics of ``x``."""
        return self.global_from_moments(*channel_mean_std(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normalised = F.instance_norm(self.local_term(x), eps=NORM_EPS)
        return self.modulate(normalised, self.global_vector(x))

    def global_entries(self) -> dict[str, torch.Tensor]:
        """Own parameter name -> boolean mask of its entries that belong to the global branch
        (parameters absent from the dict belong to the local term only)."""
        return {}

    def relu_hidden_layer(self) -> nn.Module | None:
        """The layer whose output goes through hidden ReLU units (None: no ReLU units)."""
        return None


def whole_mask(parameter: torch.Tensor) -> torch.Tensor:
    """Every entry of ``parameter`` (for :meth:`GlobalAttentionBase.global_entries`)."""
    return torch.ones_like(parameter, dtype=torch.bool)


class GlobalAttention(GlobalAttentionBase):
    """Global attention module (GAM) of UEGAN, for ``channels`` feature channels.

    global vector g = expand(relu(reduce([mean, std])))        (c/8 hidden channels)
    output          = InstanceNorm(fuse([x, broadcast(g)]))

    ``fuse`` is a 1x1 convolution over 2c channels (input first, global vector second). Because
    g is constant over the image, ``fuse`` is evaluated as ``W_x * x + (W_g g + b)``: the same
    sum without materialising the broadcast half of the concatenation.

    Note (spec, "Findings"): the InstanceNorm removes every per-channel constant, so the global
    branch, the global half of ``fuse`` and its bias never change the output and get zero
    gradient. This module reproduces the published model faithfully, inert branch included;
    in the three-part form of :class:`GlobalAttentionBase` its ``modulate`` is the identity.
    """

    global_branch_inert = True

    def __init__(self, channels: int):
        super().__init__()
        self.add_global_mlp(channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def local_term(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.fuse.weight[:, :self.channels])

    def global_from_moments(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return self.expand(F.relu(self.reduce(torch.cat([mean, std], dim=1)))).flatten(1)

    def modulate(self, normalised: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return normalised

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.global_vector(x)[:, :, None, None]
        w_g = self.fuse.weight[:, self.channels:]
        global_term = F.conv2d(g, w_g, self.fuse.bias)
        return F.instance_norm(self.local_term(x) + global_term, eps=NORM_EPS)

    def global_entries(self) -> dict[str, torch.Tensor]:
        fuse = torch.zeros_like(self.fuse.weight, dtype=torch.bool)
        fuse[:, self.channels:] = True
        return {"reduce.weight": whole_mask(self.reduce.weight), "expand.weight": whole_mask(self.expand.weight),
                "fuse.weight": fuse, "fuse.bias": whole_mask(self.fuse.bias)}

    def relu_hidden_layer(self) -> nn.Module:
        return self.reduce


class LocalOnlyGlobalAttention(GlobalAttention):
    """The published GAM without its inert global branch: ``InstanceNorm(W_x * x)`` (an exact
    rewrite for speed, ``uegan.models.fast``).

    The global branch adds ``W_g g + b``, constant over the image, right before an
    InstanceNorm that subtracts every per-channel mean: the output is the same (spec,
    "Findings"), up to rounding. For inference only: in training, the dead parameters' zero
    gradients become missing gradients, and Adam's weight decay would skip them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(self.local_term(x), eps=NORM_EPS)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al.), reduction ``ratio``, bias-free."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // ratio, bias=False)
        self.fc2 = nn.Linear(channels // ratio, channels, bias=False)

    def excitation(self, squeeze: torch.Tensor) -> torch.Tensor:
        """N x c channel means -> N x c factors in (0, 1)."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeeze))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excitation(x.mean(dim=(2, 3)))[:, :, None, None]

    def relu_hidden_layer(self) -> nn.Module:
        """The layer whose output goes through hidden ReLU units."""
        return self.fc1
