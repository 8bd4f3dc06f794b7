"""Networks of UEGAN: generator, discriminator and the VGG19 feature extractor."""

from uegan.models.discriminator import Discriminator, DiscriminatorConfig
from uegan.models.generator import Generator, GeneratorConfig
from uegan.models.vgg import VGG19Features

__all__ = ["Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig", "VGG19Features"]
