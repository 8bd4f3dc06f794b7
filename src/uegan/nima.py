"""NIMA (Talebi & Milanfar 2018) as the UEGAN study scores aesthetics: MobileNetV2 + a 10-bin head.

The network is the one of the published weights (``metrics/NIMA/pretrain-model.pth`` of the UEGAN
repository): the original MobileNetV2 layout of that era (every inverted residual block has its
1x1 expansion convolution, even the first with expansion 1; input 224x224), whose
``features`` stack ends in ``AvgPool2d(7)`` and is kept as ``base_model.0``, followed by
``head = ReLU, Dropout(0.75), Linear(1280, 10), Softmax``. The module and parameter names below
reproduce that key layout exactly, so the published file loads without renaming.

Activations follow the published file, not torchvision's MobileNetV2: the stem (3x3 convolution,
stride 2) and the last 1x1 convolution to 1280 channels end in plain ReLU; only the inverted
residual blocks use ReLU6.

Preprocessing (the published test transform): RGB PIL image, resize (bilinear) so that the short
side is 256 and the long side ``int(256 * long / short)``, centre crop 224 with offsets
``int(round((size - 224) / 2))``, scale to [0, 1]; no mean/std normalisation.

Score: the mean ``sum_i i * p_i`` (i = 1..10) of the predicted distribution, and its standard
deviation ``sqrt(sum_i (i - mean)^2 * p_i)``.

Weights are never downloaded. They are looked up, in order, at an explicit path, at the path in
``UEGAN_NIMA_WEIGHTS``, and at :func:`nima_cache_path`; see :func:`resolve_nima_weights`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from uegan.errors import UserError

log = logging.getLogger(__name__)

ENV_VAR = "UEGAN_NIMA_WEIGHTS"
CACHE_SUBPATH = ("checkpoints", "uegan", "nima-pretrain-model.pth")
PUBLISHED_FILE = "metrics/NIMA/pretrain-model.pth"
PUBLISHED_REPOSITORY = "https://github.com/eezkni/UEGAN"
RESIZE_SHORT = 256
CROP = 224
NUM_BINS = 10

# MobileNetV2 settings: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
FIRST_CHANNELS = 32
LAST_CHANNELS = 1280


def _conv_bn_relu(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    """Convolution, BatchNorm, plain ReLU: the stem and the last 1x1 convolution of the published file."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise (stride s), 1x1 linear projection; identity skip when shapes allow.

    ``conv`` indices 0/1 expansion conv+BN, 3/4 depthwise conv+BN, 6/7 projection conv+BN, as in
    the published weights.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_residual = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


def mobilenet_v2_features(input_size: int = CROP) -> nn.Sequential:
    """The feature stack: stem conv, 17 inverted residual blocks, 1x1 conv to 1280, AvgPool2d(input/32)."""
    layers: list[nn.Module] = [_conv_bn_relu(3, FIRST_CHANNELS, 3, 2)]
    channels = FIRST_CHANNELS
    for expand, out, repeats, first_stride in INVERTED_RESIDUAL_SETTINGS:
        for i in range(repeats):
            layers.append(InvertedResidual(channels, out, first_stride if i == 0 else 1, expand))
            channels = out
    layers.append(_conv_bn_relu(channels, LAST_CHANNELS, 1, 1))
    layers.append(nn.AvgPool2d(input_size // 32))
    return nn.Sequential(*layers)


class NIMA(nn.Module):
    """MobileNetV2 features (``base_model.0``) and the 10-bin softmax head (``head``)."""

    def __init__(self, dropout: float = 0.75) -> None:
        super().__init__()
        self.base_model = nn.Sequential(mobilenet_v2_features())
        self.head = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(LAST_CHANNELS, NUM_BINS),
            nn.Softmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x 224 x 224 in [0, 1] -> N x 10 score distribution."""
        features = self.base_model(x)
        return self.head(features.view(features.size(0), -1))


@dataclass(frozen=True)
class NimaScore:
    mean: float
    std: float


def distribution_moments(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of N x 10 distributions over the scores 1..10."""
    scores = torch.arange(1, NUM_BINS + 1, dtype=probs.dtype, device=probs.device)
    mean = (probs * scores).sum(dim=1)
    std = (probs * (scores.unsqueeze(0) - mean.unsqueeze(1)).square()).sum(dim=1).sqrt()
    return mean, std


def resize_short_side(image: Image.Image, short: int = RESIZE_SHORT) -> Image.Image:
    """Bilinear resize so the short side is ``short`` and the long side ``int(short * long / short_side)``."""
    width, height = image.size
    if width <= height:
        size = (short, int(short * height / width))
    else:
        size = (int(short * width / height), short)
    if size == (width, height):
        return image
    return image.resize(size, Image.BILINEAR)


def center_crop(image: Image.Image, size: int = CROP) -> Image.Image:
    """Centre crop ``size`` x ``size`` with offsets ``int(round((side - size) / 2))``."""
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"image of {width}x{height} is smaller than the {size}x{size} crop")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def preprocess(image: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB image (PIL, or H x W x 3 uint8 array) -> 3 x 224 x 224 float32 in [0, 1]."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 uint8 array, got {image.dtype} {image.shape}")
        image = Image.fromarray(np.ascontiguousarray(image))
    image = center_crop(resize_short_side(image.convert("RGB")))
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)


def nima_cache_path() -> Path:
    """Where the published NIMA weights are looked for last: under the torch hub folder."""
    return Path(torch.hub.get_dir()).joinpath(*CACHE_SUBPATH)


def _missing_weights_message(looked: Sequence[str]) -> str:
    return (
        "NIMA needs the published weights, which are not downloaded automatically: get the file "
        f"{PUBLISHED_FILE} from the UEGAN repository ({PUBLISHED_REPOSITORY}) and either copy it to "
        f"{nima_cache_path()}, or set {ENV_VAR}=/path/to/pretrain-model.pth, or pass "
        f"--nima-weights /path/to/pretrain-model.pth (looked at: {'; '.join(looked) or 'nothing'})"
    )


def resolve_nima_weights(path: str | Path | None = None) -> Path:
    """The NIMA weight file: ``path``, else ``$UEGAN_NIMA_WEIGHTS``, else :func:`nima_cache_path`.

    A path that is given (explicitly or through the variable) but missing is an error; it never
    falls through to the next place. Nothing found: a UserError naming the file and where to put it.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise UserError(f"NIMA weights file {explicit} does not exist. " + _missing_weights_message([]))
        return explicit
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        env_path = Path(from_env).expanduser()
        if not env_path.is_file():
            raise UserError(f"{ENV_VAR}={from_env}: no such file. " + _missing_weights_message([]))
        return env_path
    cached = nima_cache_path()
    if cached.is_file():
        return cached
    raise UserError(_missing_weights_message([f"{ENV_VAR} (unset)", str(cached)]))


def nima_weights_available(path: str | Path | None = None) -> bool:
    """Whether :func:`resolve_nima_weights` would find a file (errors on a bad explicit path too)."""
    if path is not None or os.environ.get(ENV_VAR):
        resolve_nima_weights(path)
        return True
    return nima_cache_path().is_file()


def _unwrap_state(obj: object, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{source}: not a NIMA state dict (expected a mapping of names to tensors)")
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_nima_state(model: NIMA, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load a state dict in the published layout (float16 or float32); a UserError on any mismatch."""
    state = _unwrap_state(state, source)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                details.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise UserError(f"{source}: not the published NIMA MobileNetV2 layout: {'; '.join(details)}")
    converted = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(converted, strict=True)


def load_nima(path: str | Path | None = None, device: torch.device | str = "cpu") -> NIMA:
    """A NIMA in eval mode with the published weights (found by :func:`resolve_nima_weights`)."""
    file = resolve_nima_weights(path)
    log.debug("loading NIMA weights from %s", file)
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, truncated files, non-tensor content
        raise UserError(f"{file}: cannot load NIMA weights ({error})") from error
    model = NIMA()
    load_nima_state(model, obj, source=str(file))
    return model.to(device).eval()


class NimaScorer:
    """Scores images with a loaded NIMA; batches of preprocessed images on the model's device."""

    def __init__(self, model: NIMA) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def score_tensors(self, batch: torch.Tensor) -> list[NimaScore]:
        """N x 3 x 224 x 224 in [0, 1] -> one score per image."""
        probs = self.model(batch.to(self.device, torch.float32))
        mean, std = distribution_moments(probs.double())
        return [NimaScore(float(m), float(s)) for m, s in zip(mean.tolist(), std.tolist())]

    def score_images(self, images: Sequence[Image.Image | np.ndarray]) -> list[NimaScore]:
        if not images:
            return []
        return self.score_tensors(torch.stack([preprocess(image) for image in images]))
