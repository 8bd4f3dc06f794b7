"""The named model variants of the study: the one place that defines them.

Everything else asks for a variant by name (``get_variant("uegan-charbonnier-se")``).
"""

from __future__ import annotations

from dataclasses import dataclass

from uegan.errors import UserError
from uegan.losses import IdentityCriterion
from uegan.models.generator import GeneratorConfig


@dataclass(frozen=True)
class Variant:
    """A model variant: how the generator is built and which identity criterion trains it."""

    name: str
    identity_criterion: IdentityCriterion
    se_after_ga5: bool
    summary: str
    published: tuple[float, float, float] | None = None  # FiveK PSNR, SSIM, NIMA reported

    def generator_config(self, conv_dim: int = 32) -> GeneratorConfig:
        return GeneratorConfig(conv_dim=conv_dim, se_after_ga5=self.se_after_ga5)


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
    )
}
DEFAULT_VARIANT = "uegan"


def get_variant(name: str) -> Variant:
    """The variant called ``name``; a UserError listing the known names otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise UserError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}") from None


def variant_for(config: GeneratorConfig, identity_criterion: IdentityCriterion | None = None) -> str | None:
    """The name of the variant whose generator has this architecture (first match), if any."""
    for variant in VARIANTS.values():
        if variant.se_after_ga5 == config.se_after_ga5 and (
                identity_criterion is None or variant.identity_criterion == identity_criterion):
            return variant.name
    return None
