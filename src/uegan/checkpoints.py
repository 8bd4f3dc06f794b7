"""Loading and saving generators in every format this project meets.

- a published UEGAN checkpoint: a ``.pth`` dict with ``G_net`` (and ``D_net``, optimisers ...),
  or a bare published generator state dict;
- a training checkpoint of this project (``format: "uegan-train"``, written by the trainer);
- an exported generator of this project: a safetensors file whose metadata holds the format,
  its version, the variant, the generator configuration and the model card's facts
  (:mod:`uegan.model_card`).

:func:`load_generator` reads the generator of any of them; :func:`load_weights` also the
discriminator, when the file holds one (``uegan train --init-from``).

The format is detected from the file, never asked for. Files are untrusted input: ``.pth`` files
are read with ``weights_only=True`` (no loader ever unpickles arbitrary objects), and the tensor
shapes a file stores are checked against the shapes its configuration implies (computed on the
``meta`` device, without allocating) before any network is built, so a small file cannot make
the loader allocate a huge one. Every way a file can be broken ends in a one-line
:class:`UserError` that names the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from uegan.errors import UserError
from uegan.io.files import atomic_path
from uegan.model_card import ModelCard, card_from_training_checkpoint
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
    card: ModelCard = field(default_factory=ModelCard)  # what the file says about the weights


@dataclass
class LoadedWeights:
    """The generator of a file and, when the file holds one (a training checkpoint or a published
    checkpoint with ``D_net``), the discriminator's configuration and weights (shapes checked)."""

    generator: LoadedGenerator
    discriminator_config: DiscriminatorConfig | None = None
    discriminator_state: dict[str, torch.Tensor] | None = None


def generator_config_from_dict(values: Any, source: str) -> GeneratorConfig:
    """A :class:`GeneratorConfig` from a file's stored fields; a UserError if they are not one."""
    return _config_from_dict(GeneratorConfig, values, "generator", source)


def _config_from_dict(kind: type, values: Any, what: str, source: str) -> Any:
    if not isinstance(values, Mapping) or not all(isinstance(key, str) for key in values):
        raise UserError(f"{source}: the {what} configuration is not a mapping of field names")
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source}: {what} configuration has unknown fields {unknown}; "
                        f"was it written by a newer uegan?")
    try:
        return kind(**values)
    except (TypeError, ValueError) as error:
        raise UserError(f"{source}: invalid {what} configuration ({error})") from None


def state_shapes(build: Callable[[], nn.Module]) -> dict[str, tuple[int, ...]]:
    """The state dict's shapes of the module ``build()`` makes, built on the ``meta`` device:
    no memory is allocated, whatever size the configuration asks for."""
    with torch.device("meta"):
        module = build()
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def check_state_shapes(expected: Mapping[str, tuple[int, ...]],
                       stored: Mapping[str, tuple[int, ...]], what: str, source: str) -> None:
    """A UserError unless ``stored`` has exactly the keys and shapes of ``expected``."""
    missing = sorted(set(expected) - set(stored))
    unknown = sorted(set(stored) - set(expected))
    wrong = sorted(key for key in set(expected) & set(stored) if tuple(stored[key]) != expected[key])
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unknown:
        problems.append(f"unexpected {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} shape(s) differ, e.g. {key}: {list(stored[key])} in the "
                        f"file, {list(expected[key])} expected")
    if problems:
        raise UserError(f"{source}: the weights do not fit a UEGAN {what} of the configuration "
                        f"the file states ({'; '.join(problems)})")


def _tensor_state(state: Any, what: str, source: str) -> dict[str, torch.Tensor]:
    """``state`` as a str -> tensor dict; a UserError if it is anything else."""
    if not isinstance(state, Mapping) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise UserError(f"{source}: the {what} weights are not a state dict of named tensors")
    return dict(state)


def _shapes_of(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def _build_generator(config: GeneratorConfig, state: Mapping[str, torch.Tensor], source: str
                     ) -> Generator:
    check_state_shapes(state_shapes(lambda: Generator(config)), _shapes_of(state), "generator",
                       source)
    generator = Generator(config)
    try:
        generator.load_state_dict(state)
    except RuntimeError as error:  # a dtype that cannot be copied, for instance
        raise UserError(f"{source}: the weights do not fit a UEGAN generator "
                        f"({str(error).splitlines()[0]})") from None
    return generator.eval()


def save_generator(path: str | Path, generator: Generator, variant: str | None,
                   overwrite: bool = False, card: ModelCard | None = None) -> Path:
    """Write ``generator`` as safetensors with its metadata (and ``card``'s facts), atomically."""
    metadata = {
        "format": GENERATOR_FORMAT,
        "format_version": str(GENERATOR_FORMAT_VERSION),
        "variant": variant or "",
        "conv_dim": str(generator.config.conv_dim),
        "generator_config": json.dumps(generator.config.to_dict()),
    }
    if card is not None:
        metadata["card"] = json.dumps(card.to_dict())
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


def _export_config(metadata: Mapping[str, str], source: str) -> GeneratorConfig:
    if metadata.get("format") != GENERATOR_FORMAT:
        raise UserError(f"{source}: a safetensors file, but not a uegan generator "
                        f"(metadata format {metadata.get('format')!r})")
    try:
        version = int(metadata.get("format_version", "0"))
        values = json.loads(metadata["generator_config"])
    except (KeyError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise UserError(f"{source}: broken uegan generator metadata ({error.__class__.__name__}: "
                        f"{error}); export the generator again") from None
    if version > GENERATOR_FORMAT_VERSION:
        raise UserError(f"{source}: generator format version {version} is newer than this uegan "
                        f"understands ({GENERATOR_FORMAT_VERSION}); upgrade uegan")
    return generator_config_from_dict(values, source)


def _load_export(path: Path) -> LoadedGenerator:
    source = str(path)
    try:
        with safe_open(source, framework="pt") as handle:
            config = _export_config(handle.metadata() or {}, source)
            stored = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            # the shapes first: only a file whose tensors fit its configuration is read
            check_state_shapes(state_shapes(lambda: Generator(config)), stored, "generator",
                               source)
            state = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = handle.metadata() or {}
    except SafetensorError as error:
        raise UserError(f"{source}: a truncated or corrupt safetensors file ({error}); export "
                        f"the generator again") from None
    variant = metadata.get("variant") or None
    return LoadedGenerator(_build_generator(config, state, source), variant, "export",
                           _stored_card(metadata.get("card"), variant, source))


def _stored_card(text: str | None, variant: str | None, source: str) -> ModelCard:
    """The card's facts an export stores (none in exports written before cards)."""
    try:
        card = ModelCard.from_dict(json.loads(text)) if text else ModelCard()
    except ValueError:  # broken facts are not broken weights
        card = ModelCard()
    card.variant = variant
    card.source = card.source or f"uegan export {source}"
    return card


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, with a clear error on failure."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to parse an untrusted file
        message = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"{path}: cannot read as a PyTorch checkpoint "
                        f"({error.__class__.__name__}: {message})") from None


def _generator_from_dict(data: dict[Any, Any], path: Path) -> LoadedGenerator:
    source = str(path)
    if isinstance(data.get("format"), str) and data["format"] == TRAIN_FORMAT:
        config = generator_config_from_dict(data.get("generator_config"), source)
        state = _tensor_state(data.get("G"), "generator", source)
        variant = data.get("variant")
        return LoadedGenerator(_build_generator(config, strip_parallel_prefix(state), source),
                               variant if isinstance(variant, str) else None, "train",
                               card_from_training_checkpoint(data, source))
    published = data.get("G_net", data)
    if isinstance(published, dict) and any(str(k).endswith("enc1.main.1.weight") for k in published):
        state = _tensor_state(published, "generator", source)
        try:
            config, state = generator_from_published(state, source)
        except ValueError as error:  # shapes that give no valid configuration
            raise UserError(f"{source}: not a UEGAN generator ({error})") from None
        epoch = data.get("epoch")
        card = ModelCard(variant_for(config), f"published-format checkpoint {source}"
                         + (f" (epoch {epoch})" if isinstance(epoch, (int, float)) else ""))
        return LoadedGenerator(_build_generator(config, state, source), variant_for(config),
                               "published", card)
    raise UserError(f"{source}: not a UEGAN checkpoint (expected a published checkpoint with "
                    f"'G_net', a uegan training checkpoint or a uegan generator export)")


def check_readable_file(path: Path, what: str = "checkpoint") -> None:
    """A UserError unless ``path`` is a file this process can open for reading."""
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, expected a file")
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise UserError(f"{what} {path} cannot be read ({error.strerror or error}); check its "
                        f"permissions") from None


def _load(path: Path) -> tuple[LoadedGenerator, dict[Any, Any] | None]:
    """The generator of any supported file, and the file's dict when it is a ``.pth``."""
    check_readable_file(path)
    if _is_safetensors(path):
        return _load_export(path), None
    if path.suffix == ".safetensors":
        raise UserError(f"{path}: a truncated or corrupt safetensors file (no valid header); "
                        f"export the generator again")
    data = read_torch_file(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a UEGAN checkpoint (a {data.__class__.__name__}, "
                        f"not a dict)")
    return _generator_from_dict(data, path), data


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from any supported file, in eval mode, on ``device``."""
    path = Path(path).expanduser()
    loaded, _ = _load(path)
    loaded.generator.to(device)
    log.debug("loaded %s generator from %s (variant %s)", loaded.source_format, path, loaded.variant)
    return loaded


def _discriminator_of(data: dict[Any, Any], source: str
                      ) -> tuple[DiscriminatorConfig, dict[str, torch.Tensor]] | None:
    """The discriminator a training or published checkpoint holds (None if it holds none)."""
    if data.get("format") == TRAIN_FORMAT and "D" in data:
        config = _config_from_dict(DiscriminatorConfig, data.get("discriminator_config"),
                                   "discriminator", source)
        state = strip_parallel_prefix(_tensor_state(data["D"], "discriminator", source))
    elif data.get("format") != TRAIN_FORMAT and isinstance(data.get("D_net"), Mapping):
        try:
            config, state = discriminator_from_published(
                _tensor_state(data["D_net"], "discriminator", source), source)
        except ValueError as error:
            raise UserError(f"{source}: not a UEGAN discriminator ({error})") from None
    else:
        return None
    check_state_shapes(state_shapes(lambda: Discriminator(config)), _shapes_of(state),
                       "discriminator", source)
    return config, state


def load_weights(path: str | Path) -> LoadedWeights:
    """G and, when the file holds one, D of any supported file (on the CPU): what a training
    run started from these weights loads (an export holds G only)."""
    path = Path(path).expanduser()
    loaded, data = _load(path)
    found = _discriminator_of(data, str(path)) if data is not None else None
    return LoadedWeights(loaded, *(found if found is not None else (None, None)))


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
    source = str(path)
    try:
        g_config, g_state = generator_from_published(
            _tensor_state(data["G_net"], "generator", source), source)
        d_config = d_state = None
        if "D_net" in data:
            d_config, d_state = discriminator_from_published(
                _tensor_state(data["D_net"], "discriminator", source), source)
    except ValueError as error:
        raise UserError(f"{source}: not a UEGAN checkpoint ({error})") from None
    check_state_shapes(state_shapes(lambda: Generator(g_config)), _shapes_of(g_state),
                       "generator", source)
    if d_config is not None and d_state is not None:
        check_state_shapes(state_shapes(lambda: Discriminator(d_config)), _shapes_of(d_state),
                           "discriminator", source)
    return PublishedCheckpoint(g_config, g_state, d_config, d_state)


def build_published(checkpoint: PublishedCheckpoint) -> tuple[Generator, Discriminator | None]:
    generator = _build_generator(checkpoint.generator_config, checkpoint.generator_state, "checkpoint")
    discriminator = None
    if checkpoint.discriminator_state is not None and checkpoint.discriminator_config is not None:
        discriminator = Discriminator(checkpoint.discriminator_config)
        discriminator.load_state_dict(checkpoint.discriminator_state)
    return generator, discriminator
