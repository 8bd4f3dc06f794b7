"""Training configuration: one flat dataclass, YAML presets and ``key=value`` overrides.

Precedence, lowest first: the dataclass defaults (the published FiveK settings of the spec),
a YAML preset (``--config FILE``: a mapping of field names to values), the command-line flags,
then ``--set key=value``. On ``--resume`` the run directory's ``config.json`` replaces the
defaults and the preset, so only what is given on the command line changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from uegan.errors import UserError
from uegan.runtime import PRECISIONS, check_precision, check_threads, parse_device
from uegan.training.run_folder import CONFIG_FILE
from uegan.variants import get_variant

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "TrainConfig", "load_config", "resolve_train_config"]
# fields that fix the networks' shapes: a resumed run cannot change them
ARCHITECTURE_FIELDS = ("variant", "conv_dim", "d_conv_dim")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults: the published FiveK setup (spec)."""

    # data (folders searched recursively for png/jpg/jpeg/tif/tiff/webp/bmp, any letter case)
    low: str | None = None            # low-quality photos (the generator's inputs)
    high: str | None = None           # high-quality photos (unpaired with ``low``)
    val_low: str | None = None        # paired validation inputs ...
    val_label: str | None = None      # ... and their labels, matched by file stem
    out: str | None = None            # the run directory
    skip_bad_images: bool = False     # skip (and count) unreadable files instead of stopping

    # model
    variant: str = "uegan"
    conv_dim: int = 32                # generator width C
    d_conv_dim: int = 32              # discriminator width
    init_gain: float = 0.02           # orthogonal init gain (published)
    vgg_weights: str | None = None    # VGG19 ImageNet file; "random" only when asked for
    init_from: str | None = None      # start G (and D, when the file holds one) from these
                                      # weights; steps, optimisers and schedule start fresh

    # augmentation: random crop, resize, flips
    crop_size: int = 512
    image_size: int = 256
    hflip: bool = True
    vflip: bool = True

    # optimisation
    batch_size: int = 10              # per process
    epochs: int = 100                 # one epoch = one pass over the smaller set
    decay_epochs: int | None = None   # linear decay to zero over the last N (default: half, as
                                      # the published 50 of 100)
    steps: int | None = None          # stop after this many steps in total (overrides epochs)
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4        # coupled L2 (torch.optim.Adam)
    adv_weight: float = 0.1
    fidelity_weight: float = 1.0
    identity_weight: float = 0.1
    adversarial_input: bool = True    # D also learns that raw inputs are not high quality
    pool_size: int = 50

    # validation (after epoch e, 1-based: e >= val_start_epoch and (e - start) % val_every == 0)
    val_start_epoch: int = 8
    val_every: int = 2
    val_save_images: int = 4          # first N validation outputs saved as PNG and to TensorBoard
    nima_weights: str | None = None   # NIMA is measured only when its weights are given

    # checkpoints
    save_every: int = 1000            # steps
    keep_last: int = 3                # newest step checkpoints kept (the best one is kept too)
    resume: bool = False

    # runtime
    device: str = "auto"              # auto: CUDA, then MPS, then CPU
    seed: int = 0
    precision: str = "fp32"           # fp32, bf16 or fp16 (autocast; fp16 with loss scaling)
    threads: int | None = None        # torch CPU threads per process (None: torch's default)
    num_workers: int = 4              # data-loading processes per training process
    log_every: int = 10               # steps between rows of metrics.jsonl
    progress: bool = True             # progress bar (rank 0)
    tensorboard: bool = True          # TensorBoard logs when the tensorboard package is installed
    deterministic: bool = False       # deterministic kernels (slower on GPUs)

    # speed-ups (uegan.training.step.StepOptions): the same updates up to floating-point rounding
    fast_step: bool = False           # D frozen in the G step, fused Adam, conv-first upsampling
                                      # in G, output-scaled spectral norm in D
    compile: bool = False             # torch.compile of G, D and VGG19 (cached on disk)

    def validate(self) -> "TrainConfig":
        """Check every value; a UserError naming the field and the fix otherwise."""
        get_variant(self.variant)
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{field.name} must be a finite number (got {value})")
        positive = ("conv_dim", "d_conv_dim", "crop_size", "image_size", "batch_size", "epochs",
                    "save_every", "keep_last", "log_every", "val_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("pool_size", "num_workers", "val_start_epoch",
                     "val_save_images"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative (got {getattr(self, name)})")
        if self.seed < 0:
            raise UserError(f"seed must not be negative (got {self.seed})")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"steps must be at least 1 (got {self.steps})")
        if self.decay_epochs is not None and not 0 <= self.decay_epochs <= self.epochs:
            raise UserError(f"decay_epochs must be between 0 and epochs ({self.epochs}), got "
                            f"{self.decay_epochs}")
        if self.image_size % 16 or self.image_size < 96:
            raise UserError(f"image_size must be a multiple of 16 and at least 96 (the discriminator's "
                            f"minimum), got {self.image_size}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        check_precision(self.precision)
        check_threads(self.threads)
        parse_device(self.device)
        if (self.val_low is None) != (self.val_label is None):
            raise UserError("validation needs both --val-low and --val-label (or neither)")
        for name in ("g_lr", "d_lr", "weight_decay", "adv_weight", "fidelity_weight",
                     "identity_weight", "init_gain"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative (got {getattr(self, name)})")
        return self

    @property
    def decay_length(self) -> int:
        """Epochs of linear learning-rate decay at the end of the schedule."""
        return self.epochs // 2 if self.decay_epochs is None else self.decay_epochs

    def require_paths(self) -> None:
        """The data folders and the run folder are given, and the run folder lies outside every
        data folder (else its saved validation images would become training or validation
        images of the next run, or of this one after --resume)."""
        missing = [f"--{name}" for name in ("low", "high", "out") if getattr(self, name) is None]
        if missing:
            raise UserError(f"training needs {', '.join(missing)} (on the command line or in the "
                            f"--config file)")
        out = Path(self.out).expanduser().resolve()
        for name in ("low", "high", "val_low", "val_label"):
            folder = getattr(self, name)
            if folder is not None and out.is_relative_to(Path(folder).expanduser().resolve()):
                raise UserError(f"--out {self.out} lies inside --{name.replace('_', '-')} {folder}: "
                                f"its images would be read as data; choose a run folder outside it")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig))
_HINTS = typing.get_type_hints(TrainConfig)


def type_name(name: str) -> str:
    """The type of setting ``name`` as a user writes it: ``int``, ``str or none``, ..."""
    hint = _HINTS[name]
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    names = [member.__name__ for member in members if member is not type(None)]
    return " or ".join(names) + (" or none" if type(None) in members else "")


def settings_table(config: TrainConfig) -> list[tuple[str, str, Any, Any]]:
    """Every setting of ``config`` (each a ``--set`` key): name, type, default, value."""
    defaults = TrainConfig()
    return [(name, type_name(name), getattr(defaults, name), getattr(config, name))
            for name in FIELD_NAMES]


def _unknown_field(name: str, source: str) -> UserError:
    close = difflib.get_close_matches(name, FIELD_NAMES, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UserError(f"{source}: unknown training setting {name!r}{hint}")


def _coerce(name: str, value: Any, source: str) -> Any:
    """``value`` converted to the type of field ``name``; a UserError if it does not fit."""
    hint = _HINTS[name]
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0]
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError(f"{source}: {name} cannot be empty")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise UserError(f"{source}: {name} must be {'a ' + hint.__name__ if hasattr(hint, '__name__') else hint}"
                    f"{' or none' if optional else ''} (got {value!r})")


def apply_values(config: TrainConfig, values: dict[str, Any], source: str) -> TrainConfig:
    """A copy of ``config`` with ``values`` (field name -> value) applied and type-checked."""
    checked = {}
    for name, value in values.items():
        name = str(name).replace("-", "_")
        if name not in FIELD_NAMES:
            raise _unknown_field(name, source)
        checked[name] = _coerce(name, value, source)
    return dataclasses.replace(config, **checked)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML preset: a mapping of field names to values."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of training settings, got a {type(data).__name__}")
    return data


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``; values are read as YAML scalars."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        result[key.strip()] = value
    return result


def load_config(preset: str | Path | None = None, overrides: dict[str, Any] | None = None,
                set_values: dict[str, Any] | None = None,
                base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or ``base``) <- preset file <- command-line ``overrides`` <- ``--set`` values."""
    config = base if base is not None else TrainConfig()
    if preset is not None:
        config = apply_values(config, read_yaml(preset), str(preset))
    if overrides:
        config = apply_values(config, overrides, "command line")
    if set_values:
        config = apply_values(config, set_values, "--set")
    return config.validate()


def config_from_json(path: str | Path) -> TrainConfig:
    """The resolved configuration a run wrote to ``config.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the run's configuration ({error})") from error
    return apply_values(TrainConfig(), data, str(path))


def changed_fields(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    return {name: (getattr(old, name), getattr(new, name)) for name in FIELD_NAMES
            if getattr(old, name) != getattr(new, name)}


def resolve_train_config(preset: str | Path | None = None, overrides: dict[str, Any] | None = None,
                         set_values: dict[str, Any] | None = None) -> TrainConfig:
    """The configuration of a run, as ``uegan train`` builds it.

    A new run: defaults <- preset <- overrides <- set values. With ``resume`` (in the overrides
    or the preset) and a run directory that already has a ``config.json``, that file replaces
    the defaults, so a resumed run keeps its settings unless the command line changes them.
    """
    config = load_config(preset, overrides, set_values)
    saved_path = Path(config.out).expanduser() / CONFIG_FILE if config.out else None
    if not config.resume or saved_path is None or not saved_path.is_file():
        return config
    saved = config_from_json(saved_path)
    resumed = load_config(preset, overrides, set_values, base=saved)
    resumed.resume = True
    changes = {k: v for k, v in changed_fields(saved, resumed).items() if k != "resume"}
    for name, (old, new) in changes.items():
        if name in ARCHITECTURE_FIELDS:
            raise UserError(f"{saved_path}: the run was started with {name}={old!r}; a resumed run "
                            f"cannot change it to {new!r}")
        log.warning("resumed run: %s changed from %r to %r", name, old, new)
    return resumed
