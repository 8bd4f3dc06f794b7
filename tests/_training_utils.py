"""Helpers of the training tests: tiny image folders, a tiny feature extractor, tiny configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from uegan.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int, seed: int, sizes=((140, 130), (150, 140)),
                extensions=(".png", ".PNG", ".jpg", ".tif", ".bmp", ".webp")) -> list[Path]:
    """``count`` smooth random RGB images with varied sizes, names and extensions (some nested)."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        base = rng.uniform(0, 255, size=(height // 10 + 2, width // 10 + 2, 3)).astype(np.uint8)
        image = Image.fromarray(base).resize((width, height), Image.BILINEAR)
        sub = folder / ("nested" if index % 3 == 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{index:03d}{extensions[index % len(extensions)]}"
        image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".webp") else image.save(path)
        paths.append(path)
    return paths


def make_pairs(low: Path, label: Path, count: int, seed: int, size=(112, 100)) -> None:
    rng = np.random.default_rng(seed)
    low.mkdir(parents=True, exist_ok=True)
    label.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        target = rng.uniform(0, 255, size=(size[1], size[0], 3)).astype(np.uint8)
        darker = (target * 0.7).astype(np.uint8)
        Image.fromarray(target).save(label / f"pair{index}.png")
        Image.fromarray(darker).save(low / f"pair{index}.png")


class TinyFeatures(nn.Module):
    """Stands in for VGG19 in trainer tests: five feature maps from small strided convolutions."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        layers, channels = [], 3
        for out in (4, 4, 8, 8, 8):
            conv = nn.Conv2d(channels, out, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
                conv.bias.zero_()
            layers.append(conv)
            channels = out
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = torch.relu(layer(x))
            outputs.append(x)
        return outputs


def tiny_config(tmp_path: Path, out: str = "run", **overrides) -> TrainConfig:
    """A configuration that trains in a fraction of a second per step on a CPU."""
    low, high = tmp_path / "low", tmp_path / "high"
    if not low.exists():
        make_images(low, 5, seed=1)
        make_images(high, 4, seed=2)
    values = dict(low=str(low), high=str(high), out=str(tmp_path / out), conv_dim=8, d_conv_dim=8,
                  crop_size=128, image_size=96, batch_size=1, pool_size=2, steps=4, save_every=2,
                  keep_last=5, num_workers=0, progress=False, vgg_weights="random", log_every=1,
                  tensorboard=False, seed=3)
    values.update(overrides)
    return TrainConfig(**values).validate()


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def uegan_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "uegan", *args]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(uegan_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def tensors_equal(a: dict, b: dict) -> list[str]:
    """Keys whose tensors differ (or are missing on one side), recursively through dicts/lists."""
    diffs: list[str] = []

    def walk(x, y, key):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                    and x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)):
                diffs.append(key)
        elif isinstance(x, dict) and isinstance(y, dict):
            for k in set(x) | set(y):
                walk(x.get(k), y.get(k), f"{key}.{k}")
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if len(x) != len(y):
                diffs.append(key)
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{key}[{i}]")
        elif x != y:
            diffs.append(key)

    walk(a, b, "")
    return diffs


@pytest.fixture
def one_thread():
    """Trainer tests run one intra-op thread: tiny convolutions gain nothing from more, and on a
    shared 2-core machine extra threads only wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_fails_after_the_first(error: BaseException):
    """A stand-in for ``torch.save`` on a disk that fills up: the first save is written, every
    later one leaves a partial file behind and raises ``error``."""
    real_save = torch.save
    saves = []

    def save(obj, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 1:
            return real_save(obj, path, *args, **kwargs)
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise error

    return save
