"""Loading and saving generators in every format this project meets.

- a published UEGAN checkpoint: a ``.pth`` dict with ``G_net`` (and ``D_net``, optimisers ...),
  or a bare published generator state dict;
- a training checkpoint of this project (``format: "uegan-train"``, written by the trainer);
- an exported generator of this project: a safetensors file whose metadata holds the format,
  its version, the variant and the generator configuration.

The format is detected from the file, never asked for. ``.pth`` files are read with
``weights_only=True``: no loader ever unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from uegan.errors import UserError
from uegan.io.files import atomic_path
from uegan.models.discriminator import Discriminator, DiscriminatorConfig
from uegan.models.generator import Generator, GeneratorConfig
from uegan.models.published import (discriminator_from_published, generator_from_published,
                             strip_parallel_prefix)
from uegan.variants import variant_for

log = logging.getLogger(__name__)

GENERATOR_FORMAT = "uegan-generator"
GENERATOR_FORMAT_VERSION = 1
TRAIN_FORMAT = "uegan-train"
SAFETENSORS_MAGIC_MAX_HEADER = 100_000_000


@dataclass
class LoadedGenerator:
    """A generator read from a file, with what the file said about it."""

    generator: Generator
    variant: str | None
    source_format: str  # "published", "train" or "export"


def generator_config_from_dict(values: dict[str, Any], source: str) -> GeneratorConfig:
    known = {f.name for f in fields(GeneratorConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source}: generator configuration has unknown fields {unknown}; "
                        f"was it written by a newer uegan?")
    return GeneratorConfig(**values)


def _build_generator(config: GeneratorConfig, state: dict[str, torch.Tensor], source: str
                     ) -> Generator:
    generator = Generator(config)
    try:
        generator.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"{source}: the weights do not fit a UEGAN generator ({error})") from error
    return generator.eval()


def save_generator(path: str | Path, generator: Generator, variant: str | None,
                   overwrite: bool = False) -> Path:
    """Write ``generator`` as safetensors with its metadata, atomically."""
    from safetensors.torch import save_file

    metadata = {
        "format": GENERATOR_FORMAT,
        "format_version": str(GENERATOR_FORMAT_VERSION),
        "variant": variant or "",
        "conv_dim": str(generator.config.conv_dim),
        "generator_config": json.dumps(generator.config.to_dict()),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    with atomic_path(path, overwrite=overwrite) as temporary:
        save_file(state, str(temporary), metadata=metadata)
    return Path(path)


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header_size = int.from_bytes(head[:8], "little")
    return 0 < header_size < SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def _load_export(path: Path) -> LoadedGenerator:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    if metadata.get("format") != GENERATOR_FORMAT:
        raise UserError(f"{path}: a safetensors file, but not a uegan generator "
                        f"(metadata format {metadata.get('format')!r})")
    version = int(metadata.get("format_version", "0"))
    if version > GENERATOR_FORMAT_VERSION:
        raise UserError(f"{path}: generator format version {version} is newer than this uegan "
                        f"understands ({GENERATOR_FORMAT_VERSION}); upgrade uegan")
    config = generator_config_from_dict(json.loads(metadata["generator_config"]), str(path))
    return LoadedGenerator(_build_generator(config, state, str(path)),
                           metadata.get("variant") or None, "export")


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, with a clear error on failure."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"{path}: cannot read as a PyTorch checkpoint ({error.__class__.__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})") from error


def _generator_from_dict(data: dict[str, Any], path: Path) -> LoadedGenerator:
    source = str(path)
    if data.get("format") == TRAIN_FORMAT:
        config = generator_config_from_dict(dict(data["generator_config"]), source)
        return LoadedGenerator(_build_generator(config, strip_parallel_prefix(data["G"]), source),
                               data.get("variant"), "train")
    published = data.get("G_net", data)
    if isinstance(published, dict) and any(str(k).endswith("enc1.main.1.weight") for k in published):
        config, state = generator_from_published(published, source)
        return LoadedGenerator(_build_generator(config, state, source), variant_for(config),
                               "published")
    raise UserError(f"{source}: not a UEGAN checkpoint (expected a published checkpoint with "
                    f"'G_net', a uegan training checkpoint or a uegan generator export)")


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from any supported file, in eval mode, on ``device``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if _is_safetensors(path):
        loaded = _load_export(path)
    else:
        data = read_torch_file(path)
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a UEGAN checkpoint (a {type(data).__name__}, not a dict)")
        loaded = _generator_from_dict(data, path)
    loaded.generator.to(device)
    log.debug("loaded %s generator from %s (variant %s)", loaded.source_format, path, loaded.variant)
    return loaded


@dataclass
class PublishedCheckpoint:
    generator_config: GeneratorConfig
    generator_state: dict[str, torch.Tensor]
    discriminator_config: DiscriminatorConfig | None
    discriminator_state: dict[str, torch.Tensor] | None


def load_published_checkpoint(path: str | Path) -> PublishedCheckpoint:
    """G (and D if present) of a published checkpoint, mapped to this project's names."""
    data = read_torch_file(path)
    if not isinstance(data, dict) or "G_net" not in data:
        raise UserError(f"{path}: not a published UEGAN checkpoint (no 'G_net')")
    g_config, g_state = generator_from_published(data["G_net"], str(path))
    d_config = d_state = None
    if "D_net" in data:
        d_config, d_state = discriminator_from_published(data["D_net"], str(path))
    return PublishedCheckpoint(g_config, g_state, d_config, d_state)


def build_published(checkpoint: PublishedCheckpoint) -> tuple[Generator, Discriminator | None]:
    generator = _build_generator(checkpoint.generator_config, checkpoint.generator_state, "checkpoint")
    discriminator = None
    if checkpoint.discriminator_state is not None and checkpoint.discriminator_config is not None:
        discriminator = Discriminator(checkpoint.discriminator_config)
        discriminator.load_state_dict(checkpoint.discriminator_state)
    return generator, discriminator
