"""``torch.hub`` entry points of uegan, for a local clone (nothing is downloaded):

    import torch
    enhancer = torch.hub.load("path/to/uegan", "enhancer", source="local", path="weights/")
    enhancer.enhance_file("photo.jpg", "photo-enhanced.jpg")
    generator = torch.hub.load("path/to/uegan", "generator", source="local",
                               path="UEGAN_FiveK.pth")

``path``: local weights, anywhere on disk: a pretrained folder (``uegan export CKPT --folder
DIR``: model.safetensors + config.json + README.md), a run folder of ``uegan train`` (its final
generator), or any checkpoint file (a published UEGAN ``.pth``, a training checkpoint, a
safetensors export). Where the published FiveK checkpoint comes from: the README, "Pretrained
weights and fine-tuning". The clone's ``src/`` is put first on ``sys.path``, so the clone's code
is what runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

dependencies = ["torch", "numpy", "PIL", "safetensors", "tqdm", "yaml", "tifffile"]

_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


def _local(path: str | Path) -> Path:
    from uegan.errors import UserError

    local = Path(path).expanduser()
    if not local.exists():
        raise UserError(f"{path} does not exist: torch.hub entry points of uegan load local "
                        f"weights only (a pretrained folder, a run folder or a checkpoint file); "
                        f"for a Hugging Face Hub id use uegan.Enhancer.from_pretrained")
    return local


def enhancer(path: str | Path, device: str = "cpu", **options: Any):
    """A ``uegan.Enhancer`` (any image size and kind: PIL, numpy, torch) from local weights;
    ``options``: those of ``Enhancer`` (``max_side``, ``full_res``, ``tile`` ...)."""
    from uegan.inference.enhancer import Enhancer

    return Enhancer.from_pretrained(_local(path), device, **options)


def generator(path: str | Path, device: str = "cpu"):
    """The bare generator (eval mode): N x 3 x H x W in [-1, 1], H and W multiples of 16."""
    from uegan.pretrained import load_pretrained

    return load_pretrained(_local(path), device).loaded.generator
