"""The named model variants of the study: the one place that defines them.

Everything else asks for a variant by name (``get_variant("uegan-charbonnier-se")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from uegan.errors import UserError
from uegan.losses import IdentityCriterion
from uegan.models.generator import GeneratorConfig

# GeneratorConfig fields a variant may set through ``generator_options`` (conv_dim is a training
# choice, se_after_ga5 has its own Variant field)
_OPTION_FIELDS = tuple(f.name for f in fields(GeneratorConfig) if f.name not in ("conv_dim", "se_after_ga5"))


@dataclass(frozen=True)
class Variant:
    """A model variant: how the generator is built and which identity criterion trains it."""

    name: str
    identity_criterion: IdentityCriterion
    se_after_ga5: bool
    summary: str
    published: tuple[float, float, float] | None = None  # FiveK PSNR, SSIM, NIMA reported
    # further GeneratorConfig fields (gam, se_before_ga5, ga5_scale ...); empty = published model
    generator_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.generator_options) - set(_OPTION_FIELDS))
        if unknown:
            raise ValueError(f"variant {self.name}: unknown generator options {unknown}; "
                             f"known: {', '.join(_OPTION_FIELDS)}")

    def generator_config(self, conv_dim: int = 32) -> GeneratorConfig:
        return GeneratorConfig(conv_dim=conv_dim, se_after_ga5=self.se_after_ga5,
                               **self.generator_options)

    def architecture(self) -> str:
        """The generator's departures from the published UEGAN, in words ("-" if none)."""
        config = self.generator_config(conv_dim=8)
        parts = []
        if config.gam != "published":
            parts.append(f"{config.gam} GAM")
        if config.se_before_ga5:
            parts.append("SE before ga5")
        if config.ga5_scale != 1.0:
            parts.append(f"ga5 x {config.ga5_scale:g}")
        if config.se_after_ga5:
            parts.append("SE after ga5")
        if config.curve_knots:
            parts.append(f"global tone curves ({config.curve_knots} knots)")
        if not config.local_residual:
            parts.append("no U-Net")
        return ", ".join(parts) or "-"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("uegan", "l1", False,
                "the original UEGAN (Ni et al. 2020): multiscale L1 identity loss",
                (22.88, 0.8882, 4.76)),
        Variant("uegan-charbonnier", "charbonnier", False,
                "multiscale Charbonnier identity loss (eps 1e-3)",
                (22.98, 0.8888, 4.96)),
        Variant("uegan-charbonnier-se", "charbonnier", True,
                "Charbonnier identity loss and squeeze-and-excitation after ga5 "
                "(inert apart from a 0.5 factor: see the README)",
                (23.99, 0.8991, 5.10)),
        # The study's own variants (README, "What the published study's ablation changes"): not published.
        Variant("uegan-charbonnier-half", "charbonnier", False,
                "Charbonnier identity loss, no SE, ga5's output multiplied by 0.5: exactly what "
                "uegan-charbonnier-se computes, without the dead SE weights",
                generator_options={"ga5_scale": 0.5}),
        Variant("uegan-charbonnier-gam-mod", "charbonnier", False,
                "Charbonnier identity loss; every GAM's global statistics scale and shift the "
                "instance-normalised features (zero-initialised: starts as the published GAM)",
                generator_options={"gam": "modulated"}),
        Variant("uegan-charbonnier-se-pre", "charbonnier", False,
                "Charbonnier identity loss; squeeze-and-excitation on the encoder output before "
                "ga5, where the channel statistics are not normalised away",
                generator_options={"se_before_ga5": True}),
        Variant("uegan-charbonnier-curve", "charbonnier", False,
                "Charbonnier identity loss; one tone curve per RGB channel, predicted from the "
                "whole input's statistics and applied per pixel, under the U-Net's residual "
                "(identity at the start: starts as the published generator)",
                generator_options={"curve_knots": 16}),
        Variant("uegan-curve", "charbonnier", False,
                "the UEGAN objective (Charbonnier identity loss) training a global generator: one "
                "tone curve per RGB channel predicted from the whole input's statistics, applied "
                "per pixel; no U-Net, so no edit can follow texture",
                generator_options={"curve_knots": 16, "local_residual": False}),
    )
}
DEFAULT_VARIANT = "uegan"
# What the README recommends for training your own style, and what ``uegan demo`` trains beside
# the published generator (the evidence: docs/enhancement-study/README.md).
RECOMMENDED_VARIANT = "uegan-curve"


def get_variant(name: str) -> Variant:
    """The variant called ``name``; a UserError listing the known names otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise UserError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}") from None


def variant_for(config: GeneratorConfig, identity_criterion: IdentityCriterion | None = None) -> str | None:
    """The name of the variant whose generator has this architecture (first match), if any."""
    for variant in VARIANTS.values():
        if variant.generator_config(config.conv_dim) == config and (
                identity_criterion is None or variant.identity_criterion == identity_criterion):
            return variant.name
    return None
