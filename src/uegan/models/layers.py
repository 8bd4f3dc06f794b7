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


def channel_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: spatial mean and sqrt(unbiased variance + 1e-5), as N x C x 1 x 1."""
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=True, keepdim=True)
    return mean, torch.sqrt(var + GAM_STD_EPS)


class GlobalAttention(nn.Module):
    """Global attention module (GAM) of UEGAN, for ``channels`` feature channels.

    global vector g = expand(relu(reduce([mean, std])))        (c/8 hidden channels)
    output          = InstanceNorm(fuse([x, broadcast(g)]))

    ``fuse`` is a 1x1 convolution over 2c channels (input first, global vector second). Because
    g is constant over the image, ``fuse`` is evaluated as ``W_x * x + (W_g g + b)``: the same
    sum without materialising the broadcast half of the concatenation.

    Note (spec, "Findings"): the InstanceNorm removes every per-channel constant, so the global
    branch, the global half of ``fuse`` and its bias never change the output and get zero
    gradient. This module reproduces the published model faithfully, inert branch included.
    """

    def __init__(self, channels: int):
        super().__init__()
        hidden = channels // 8
        self.channels = channels
        self.reduce = nn.Conv2d(2 * channels, hidden, 1, bias=False)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=False)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def global_vector(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = channel_mean_std(x)
        return self.expand(F.relu(self.reduce(torch.cat([mean, std], dim=1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.global_vector(x)
        w_x, w_g = self.fuse.weight.split(self.channels, dim=1)
        local = F.conv2d(x, w_x)
        global_term = F.conv2d(g, w_g, self.fuse.bias)
        return F.instance_norm(local + global_term, eps=NORM_EPS)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al.), reduction ``ratio``, bias-free."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // ratio, bias=False)
        self.fc2 = nn.Linear(channels // ratio, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.mean(dim=(2, 3))
        excitation = torch.sigmoid(self.fc2(F.relu(self.fc1(squeeze))))
        return x * excitation[:, :, None, None]
