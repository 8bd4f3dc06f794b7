"""Finding and loading the VGG19 ImageNet weights of the fidelity loss.

Order: an explicit path; else the standard torch hub cache file ``vgg19-dcbb9e9d.pth`` (under
``$TORCH_HOME/hub/checkpoints``, where torchvision keeps it too); else a download through
``torch.hub`` when online. Offline and absent: a :class:`UserError` that says which file to put
where. Random weights only when asked for by name (``"random"``), never as a silent fallback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from uegan.errors import UserError
from uegan.models.vgg import VGG19Features
from uegan.models.published import strip_parallel_prefix

log = logging.getLogger(__name__)

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
RANDOM = "random"


def vgg19_cache_path() -> Path:
    """Where torch.hub (and torchvision) keep the VGG19 ImageNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def resolve_vgg19_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The file to load: ``path`` if given, else the cache file, else a fresh download."""
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise UserError(f"VGG19 weights file {explicit} does not exist")
        return explicit
    cached = vgg19_cache_path()
    if cached.is_file():
        return cached
    if download:
        log.info("downloading the VGG19 ImageNet weights to %s", cached)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(VGG19_URL, str(cached), hash_prefix="dcbb9e9d")
            return cached
        except Exception as error:  # no network, proxy, hash mismatch: all end the same way
            log.debug("download failed: %s", error)
    raise UserError(
        f"the VGG19 ImageNet weights for the fidelity loss were not found and could not be "
        f"downloaded. Download {VGG19_URL} and put it at {cached} (or pass its path with "
        f"--vgg-weights PATH)")


def load_vgg19_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``features.N.*`` tensors (up to conv5_1) of a VGG19 state dict file, as float32."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"{path}: cannot read VGG19 weights ({error})") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state dict")
    wanted = set(VGG19Features().state_dict())
    state = strip_parallel_prefix(state)
    features = {k: v.float() for k, v in state.items() if k in wanted}
    missing = sorted(wanted - set(features))
    if missing:
        raise UserError(f"{path}: not a VGG19 in torchvision's layout (missing {', '.join(missing[:4])})")
    return features


def build_vgg19(weights: str | Path | None = None, download: bool = True) -> VGG19Features:
    """A frozen VGG19 feature extractor with ImageNet weights, or random ones for ``"random"``."""
    vgg = VGG19Features()
    if str(weights) == RANDOM:
        log.warning("using a RANDOM VGG19 for the fidelity loss (no ImageNet weights)")
        return vgg
    path = resolve_vgg19_weights(weights, download=download)
    try:
        vgg.load_state_dict(load_vgg19_state(path))
    except RuntimeError as error:  # shape mismatch
        raise UserError(f"{path}: not a VGG19 in torchvision's layout ({error})") from error
    return vgg
