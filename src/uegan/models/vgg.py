"""VGG19 feature extractor in torchvision's key layout (``features.N.*``), up to relu5_1."""

from __future__ import annotations

import torch
from torch import nn

# torchvision's VGG19 "E" configuration, truncated after conv5_1: channels or "M" (max-pool)
VGG19_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512)
# indices in ``features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
FEATURE_LAYERS: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20,
                                  "relu5_1": 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG19_LAYERS:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU()]
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """Frozen VGG19 that returns the five relu*_1 feature maps of an image in [0, 1].

    The ImageNet normalisation is applied inside. Layers past relu5_1 are never built.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg19_features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # always an inference network

    def forward(self, image01: torch.Tensor) -> list[torch.Tensor]:
        x = (image01 - self.mean) / self.std
        wanted = set(FEATURE_LAYERS.values())
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                outputs.append(x)
        return outputs
