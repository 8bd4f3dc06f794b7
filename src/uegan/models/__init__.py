"""The UEGAN network family: everything about the networks lives here.

- ``generator``: :class:`Generator` and its configuration; ``GAM_KINDS``, the registry of global
  attention modules a configuration can name;
- ``layers``: the building blocks, the GAM base class and the published GAM, SE;
  ``attention``: the modulated GAM; ``curve``: the global tone curves;
- ``tiling``: the generator's exact forward pass tile by tile;
- ``fast``: exact rewrites of layers for speed (the fast forms sit next to their layers);
- ``published``: the key mapping to and from the published state dicts;
- ``discriminator``, ``vgg``, ``init``: the discriminator, the loss network, the initialisation.

A new variant is one layer (for a new kind of GAM, a subclass of ``GlobalAttentionBase``
registered in ``GAM_KINDS``) plus one entry in ``uegan.variants.VARIANTS``.
"""

from uegan.models.discriminator import Discriminator, DiscriminatorConfig
from uegan.models.generator import GAM_KINDS, Generator, GeneratorConfig
from uegan.models.layers import GlobalAttentionBase
from uegan.models.vgg import VGG19Features

__all__ = ["Discriminator", "DiscriminatorConfig", "GAM_KINDS", "Generator", "GeneratorConfig",
           "GlobalAttentionBase", "VGG19Features"]
