"""Pretrained folders: ``model.safetensors`` + ``config.json`` + ``README.md`` (the model card),
the layout of a Hugging Face model repository, written by ``uegan export CKPT --folder DIR`` and
read by ``Enhancer.from_pretrained``.

    save_pretrained("uegan-fivek/", generator, "uegan", card)
    loaded = load_pretrained("uegan-fivek/")            # a local folder or file
    loaded = load_pretrained("owner/uegan-fivek")       # a Hub id (needs huggingface_hub)

``model.safetensors`` is this project's generator export (:func:`uegan.checkpoints.save_generator`:
the weights and their configuration); ``config.json`` repeats the variant, the generator
configuration and the card's facts for readers that do not open safetensors, and must agree
with the weights; ``README.md`` is :func:`uegan.model_card.render_card`. A Hub id is fetched
with ``huggingface_hub.snapshot_download`` (its standard cache, ``HF_HUB_CACHE``, and
``HF_HUB_OFFLINE=1`` for the cache alone), and only these three files.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from uegan import __version__
from uegan.checkpoints import (GENERATOR_FORMAT, GENERATOR_FORMAT_VERSION, LoadedGenerator,
                               load_generator, save_generator)
from uegan.errors import UserError
from uegan.io.files import atomic_write_text
from uegan.model_card import ModelCard, render_card
from uegan.models.generator import Generator

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PRETRAINED_FILES = (MODEL_FILE, CONFIG_FILE, CARD_FILE)
# a run folder of ``uegan train``: its final generator (its config.json is the training's)
RUN_GENERATOR_FILE = "generator.safetensors"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Pretrained:
    """A generator read from a pretrained folder (or file), with its card."""

    loaded: LoadedGenerator
    card_text: str | None   # the README.md (or the ``NAME.md`` beside a file), if present
    path: Path              # the folder or file read (a Hub snapshot: its local folder)


def card_path_for(weights: str | Path) -> Path:
    """The card written beside a weights file that is not in a pretrained folder:
    ``generator.safetensors`` -> ``generator.safetensors.md`` (``g.onnx`` and
    ``g.safetensors`` exported together get a card each)."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".md")


def write_card(weights: str | Path, card: ModelCard, overwrite: bool = False) -> Path:
    """Write ``card`` beside ``weights`` (``NAME.md``), atomically."""
    target = card_path_for(weights)
    atomic_write_text(target, render_card(card, Path(weights).name), overwrite=overwrite)
    return target


def pretrained_config(generator: Generator, variant: str | None, card: ModelCard
                      ) -> dict[str, Any]:
    """What ``config.json`` holds."""
    return {"format": GENERATOR_FORMAT, "format_version": GENERATOR_FORMAT_VERSION,
            "library": "uegan", "uegan_version": __version__, "variant": variant,
            "generator_config": generator.config.to_dict(), "card": card.to_dict()}


def save_pretrained(folder: str | Path, generator: Generator, variant: str | None,
                    card: ModelCard, overwrite: bool = False) -> list[Path]:
    """Write the three files of a pretrained folder (created if missing); nothing is written
    when one exists and ``overwrite`` is False."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, expected a folder for the pretrained export")
    existing = [name for name in PRETRAINED_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise UserError(f"{folder} already holds {', '.join(existing)} (pass --overwrite to "
                        f"replace them)")
    folder.mkdir(parents=True, exist_ok=True)
    card = replace(card, variant=variant, uegan_version=card.uegan_version or __version__)
    save_generator(folder / MODEL_FILE, generator, variant, overwrite=overwrite, card=card)
    atomic_write_text(folder / CONFIG_FILE,
                      json.dumps(pretrained_config(generator, variant, card), indent=1) + "\n",
                      overwrite=overwrite)
    atomic_write_text(folder / CARD_FILE, render_card(card), overwrite=overwrite)
    log.info("wrote %s (%s)", folder, ", ".join(PRETRAINED_FILES))
    return [folder / name for name in PRETRAINED_FILES]


def _check_config(path: Path, loaded: LoadedGenerator) -> None:
    """``config.json`` must describe the weights beside it."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the pretrained configuration ({error})") from None
    if not isinstance(config, dict) or config.get("format") != GENERATOR_FORMAT:
        raise UserError(f"{path}: not the configuration of a uegan generator (format "
                        f"{config.get('format') if isinstance(config, dict) else None!r})")
    if (config.get("generator_config") != loaded.generator.config.to_dict()
            or config.get("variant") != loaded.variant):
        raise UserError(f"{path} does not describe the weights beside it (variant "
                        f"{config.get('variant')!r}, weights: {loaded.variant!r}); export the "
                        f"folder again")


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def read_local(path: Path, device: Any = "cpu") -> Pretrained:
    """A pretrained folder, a run folder of ``uegan train`` (its final generator) or any file
    :func:`uegan.checkpoints.load_generator` reads."""
    if not path.is_dir():
        return Pretrained(load_generator(path, device), _read_text(card_path_for(path)), path)
    if (path / MODEL_FILE).is_file():
        loaded = load_generator(path / MODEL_FILE, device)
        if (path / CONFIG_FILE).is_file():
            _check_config(path / CONFIG_FILE, loaded)
        return Pretrained(loaded, _read_text(path / CARD_FILE), path)
    if (path / RUN_GENERATOR_FILE).is_file():
        weights = path / RUN_GENERATOR_FILE
        return Pretrained(load_generator(weights, device), _read_text(card_path_for(weights)), path)
    raise UserError(f"{path} holds no {MODEL_FILE} (a pretrained folder: uegan export CKPT "
                    f"--folder DIR) and no {RUN_GENERATOR_FILE} (a finished training run)")


def download(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None
             ) -> Path:
    """The local snapshot of Hub repository ``repo_id`` (downloaded into the standard cache
    unless there already, or unless ``HF_HUB_OFFLINE=1``); only the pretrained files."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(f"{repo_id} is not a local file or folder, and loading a Hugging Face "
                        f"Hub id needs huggingface_hub: pip install 'uegan[hub]' (or give a local "
                        f"folder)") from None
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                   allow_patterns=list(PRETRAINED_FILES))
    except Exception as error:  # noqa: BLE001 - the hub's failures (offline, not found, HTTP)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"{repo_id}: not a local file or folder, and not available from the "
                        f"Hugging Face Hub ({error.__class__.__name__}: {message})") from None
    return Path(folder)


def load_pretrained(path_or_repo_id: str | Path, device: Any = "cpu", *,
                    revision: str | None = None, cache_dir: str | Path | None = None
                    ) -> Pretrained:
    """A local folder or file when it exists; else a Hub id ``owner/name``."""
    path = Path(path_or_repo_id).expanduser()
    if path.exists():
        return read_local(path, device)
    text = str(path_or_repo_id)
    if not _REPO_ID.match(text) or path.suffix in (".pth", ".pt", ".safetensors"):
        raise UserError(f"{text} does not exist (expected a pretrained folder, a checkpoint file "
                        f"or a Hugging Face Hub id owner/name)")
    return read_local(download(text, revision, cache_dir), device)
