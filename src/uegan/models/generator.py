"""The UEGAN generator: a U-Net with global attention on every skip and a residual output."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from uegan.models.attention import ModulatedGlobalAttention
from uegan.models.curve import GlobalCurve
from uegan.models.layers import (ConvBlock, GlobalAttention, GlobalAttentionBase, SqueezeExcitation,
                                 Upsample, reflect_conv)

DIVISOR = 16  # height and width must be multiples of 2**4 (four stride-2 encoder stages)
# the kinds of global attention module, by the name ``GeneratorConfig.gam`` uses: a new kind is
# one entry here (a subclass of GlobalAttentionBase) plus a variant in uegan.variants
GAM_KINDS: dict[str, type[GlobalAttentionBase]] = {
    "published": GlobalAttention,
    "modulated": ModulatedGlobalAttention,
}
# fields that every configuration file carries; the others are written only when not default,
# so files of the published architecture look exactly as before they existed
ALWAYS_SERIALISED = ("conv_dim", "se_after_ga5")


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the generator.

    conv_dim: channels of the first stage (C); the bottleneck has 16 C.
    se_after_ga5: the published study's change: squeeze-and-excitation on the output of ``ga5``.

    The fields below are the study's additions (uegan.variants); their defaults are the
    published model:
    gam: a key of ``GAM_KINDS``: "published" (the GAM of the paper, global branch inert) or
        "modulated" (the global vector scales and shifts the normalised features:
        uegan.models.attention).
    se_before_ga5: squeeze-and-excitation on the encoder output ``enc5``, before ``ga5``.
    ga5_scale: a constant factor on ``ga5``'s output (0.5 is what the published study's SE block computes).
    curve_knots: 0 (published) or the knots of a global tone curve per RGB channel, predicted
        from the input's statistics (uegan.models.curve) and applied to the input before the
        U-Net's residual is added: ``out = clamp(curve(x) + dec5(...), -1, 1)``.
    local_residual: False builds no U-Net at all: the output is ``curve(x)``, a global edit
        that cannot follow texture (needs ``curve_knots``).
    """

    conv_dim: int = 32
    se_after_ga5: bool = False
    gam: str = "published"
    se_before_ga5: bool = False
    ga5_scale: float = 1.0
    curve_knots: int = 0
    local_residual: bool = True

    def __post_init__(self) -> None:
        # the global attention of the first stage has conv_dim / 8 hidden channels
        if self.conv_dim <= 0 or self.conv_dim % 8:
            raise ValueError(f"conv_dim must be a positive multiple of 8, got {self.conv_dim}")
        if self.gam not in GAM_KINDS:
            raise ValueError(f"gam must be one of {', '.join(GAM_KINDS)}, got {self.gam!r}")
        if not (math.isfinite(self.ga5_scale) and self.ga5_scale > 0):
            raise ValueError(f"ga5_scale must be a positive number, got {self.ga5_scale}")
        if self.curve_knots < 0 or self.curve_knots == 1:
            raise ValueError(f"curve_knots must be 0 (no curve) or at least 2, got {self.curve_knots}")
        if not self.local_residual and (not self.curve_knots or self.se_after_ga5 or self.se_before_ga5
                                        or self.gam != "published" or self.ga5_scale != 1.0):
            raise ValueError("local_residual=False is a curve-only generator: it needs curve_knots "
                             "and takes no U-Net options (gam, SE, ga5_scale)")

    def to_dict(self) -> dict[str, int | bool | str | float]:
        """The fields as a dict; study fields only when they differ from the published model."""
        values = asdict(self)
        defaults = {f.name: f.default for f in fields(self)}
        return {name: value for name, value in values.items()
                if name in ALWAYS_SERIALISED or value != defaults[name]}


class OutputHead(nn.Module):
    """dec5: 3x3 convolution C -> C (no activation), 7x7 convolution C -> 3, tanh."""

    def __init__(self, conv_dim: int):
        super().__init__()
        self.refine = reflect_conv(conv_dim, conv_dim, 3)
        self.to_rgb = reflect_conv(conv_dim, 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.refine(x)))


class Generator(nn.Module):
    """UEGAN generator. Input and output are RGB in [-1, 1], sides multiples of 16."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        if not config.local_residual:  # the curve-only generator: no U-Net
            self.curve = GlobalCurve(config.curve_knots)
            return
        c = config.conv_dim
        self.enc1 = ConvBlock(3, c, 7)
        self.enc2 = ConvBlock(c, 2 * c, 3, stride=2)
        self.enc3 = ConvBlock(2 * c, 4 * c, 3, stride=2)
        self.enc4 = ConvBlock(4 * c, 8 * c, 3, stride=2)
        self.enc5 = ConvBlock(8 * c, 16 * c, 3, stride=2)

        gam = GAM_KINDS[config.gam]
        self.ga1 = gam(c)
        self.ga2 = gam(2 * c)
        self.ga3 = gam(4 * c)
        self.ga4 = gam(8 * c)
        self.ga5 = gam(16 * c)
        self.se = SqueezeExcitation(16 * c) if config.se_after_ga5 else None
        self.se_pre = SqueezeExcitation(16 * c) if config.se_before_ga5 else None

        self.up1 = Upsample(16 * c, 8 * c)
        self.dec1 = ConvBlock(16 * c, 8 * c, 3)
        self.up2 = Upsample(8 * c, 4 * c)
        self.dec2 = ConvBlock(8 * c, 4 * c, 3)
        self.up3 = Upsample(4 * c, 2 * c)
        self.dec3 = ConvBlock(4 * c, 2 * c, 3)
        self.up4 = Upsample(2 * c, c)
        self.dec4 = ConvBlock(2 * c, c, 3)
        self.dec5 = OutputHead(c)
        # built last, so that the published layers draw the same initial weights with or without it
        self.curve = GlobalCurve(config.curve_knots) if config.curve_knots else None

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """What the U-Net's residual is added to: the input, or (curve variants) the input
        through its global tone curves."""
        return self.curve(x) if self.curve is not None else x

    def bottleneck(self, e5: torch.Tensor) -> torch.Tensor:
        """ga5 on the deepest encoder features, then (SE variant) channel attention.

        Study variants: SE on ``e5`` before ``ga5`` (``se_before_ga5``), a constant factor on
        ``ga5``'s output (``ga5_scale``).
        """
        if self.se_pre is not None:
            e5 = self.se_pre(e5)
        b = self.ga5(e5)
        if self.config.ga5_scale != 1.0:
            b = b * self.config.ga5_scale
        return self.se(b) if self.se is not None else b

    # the U-Net's parts, in the order the forward pass uses them (uegan.models.tiling runs
    # the same parts tile by tile)

    def encoders(self) -> list[ConvBlock]:
        """enc1 .. enc5: full resolution down to 1/16."""
        return [self.enc1, self.enc2, self.enc3, self.enc4, self.enc5]

    def skip_attention(self) -> list[GlobalAttentionBase]:
        """ga1 .. ga4: the GAM on the skip from enc1 .. enc4."""
        return [self.ga1, self.ga2, self.ga3, self.ga4]

    def decoder_stages(self) -> list[tuple[Upsample, ConvBlock]]:
        """(up1, dec1) .. (up4, dec4): each joins the upsampled map with the skip of
        ga4 .. ga1."""
        return [(self.up1, self.dec1), (self.up2, self.dec2), (self.up3, self.dec3),
                (self.up4, self.dec4)]

    def output(self, d4: torch.Tensor, e1: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """dec5 on ``d4 * e1``, added to ``base`` (see :meth:`base`) and clamped to [-1, 1]."""
        return torch.clamp(self.dec5(d4 * e1) + base, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.local_residual:
            return self.curve(x)
        features = []
        for encoder in self.encoders():
            features.append(encoder(features[-1] if features else x))
        previous = self.bottleneck(features[-1])
        for (up, dec), gam, skip in zip(self.decoder_stages(), reversed(self.skip_attention()),
                                        reversed(features[:-1])):
            previous = dec(torch.cat([up(previous), gam(skip)], dim=1))
        return self.output(previous, features[0], self.base(x))
