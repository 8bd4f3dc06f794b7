"""Key mapping between the published UEGAN state dicts and this project's modules.

The published generator names its layers ``enc1.main.1``, ``upsample1.1.main.1``, ``ga1.conv.0``
...; its discriminator ``d1.0.1`` (old-style spectral norm: ``weight_orig``, ``weight_u``,
``weight_v``) and ``d1_pred.0.1``. The tables below list every published key with its
counterpart here; shapes decide ``conv_dim`` and whether the SE block is present.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from uegan.errors import UserError
from uegan.models.discriminator import D_BLOCKS, DiscriminatorConfig
from uegan.models.generator import GeneratorConfig

StateDict = dict[str, torch.Tensor]


def generator_key_table(se_after_ga5: bool) -> dict[str, str]:
    """published key -> own key, for every parameter of the generator."""
    table: dict[str, str] = {}
    for param in ("weight", "bias"):
        for k in range(1, 6):
            table[f"enc{k}.main.1.{param}"] = f"enc{k}.conv.{param}"
        for k in range(1, 5):
            table[f"upsample{k}.1.main.1.{param}"] = f"up{k}.conv.{param}"
            table[f"dec{k}.main.1.{param}"] = f"dec{k}.conv.{param}"
        table[f"dec5.0.main.1.{param}"] = f"dec5.refine.{param}"
        table[f"dec5.1.main.1.{param}"] = f"dec5.to_rgb.{param}"
    for k in range(1, 6):
        table[f"ga{k}.conv.0.weight"] = f"ga{k}.reduce.weight"
        table[f"ga{k}.conv.2.weight"] = f"ga{k}.expand.weight"
        table[f"ga{k}.fuse.0.weight"] = f"ga{k}.fuse.weight"
        table[f"ga{k}.fuse.0.bias"] = f"ga{k}.fuse.bias"
    if se_after_ga5:  # the published study's block, in the usual ``fc = Sequential(Linear, ReLU, Linear)``
        table["se.fc.0.weight"] = "se.fc1.weight"
        table["se.fc.2.weight"] = "se.fc2.weight"
    return table


def discriminator_key_table() -> dict[str, str]:
    """published key -> own key, for every parameter and buffer of the discriminator."""
    spectral = {"weight_orig": "parametrizations.weight.original",
                "weight_u": "parametrizations.weight.0.u",
                "weight_v": "parametrizations.weight.0.v",
                "bias": "bias"}
    table: dict[str, str] = {}
    for index in range(len(D_BLOCKS)):
        for published, own in spectral.items():
            table[f"d{index + 1}.0.1.{published}"] = f"blocks.{index}.conv.{own}"
        table[f"d{index + 1}_pred.0.1.weight"] = f"heads.{index}.conv.weight"
    return table


def strip_parallel_prefix(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the ``module.`` prefix that DataParallel / DistributedDataParallel add."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def _rename(state: Mapping[str, torch.Tensor], table: Mapping[str, str], what: str,
            source: str) -> StateDict:
    missing = sorted(set(table) - set(state))
    unknown = sorted(set(state) - set(table))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) ({', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''})")
        if unknown:
            parts.append(f"{len(unknown)} unexpected key(s) ({', '.join(unknown[:4])}"
                         f"{', ...' if len(unknown) > 4 else ''})")
        raise UserError(f"{source}: not a UEGAN {what} state dict: {'; '.join(parts)}")
    return {table[key]: value for key, value in state.items()}


def _first_convolution(state: Mapping[str, torch.Tensor], key: str, what: str, source: str
                       ) -> torch.Tensor:
    """The weight of the network's first convolution, whose shape gives ``conv_dim``."""
    first = state.get(key)
    if first is None or first.ndim != 4:
        raise UserError(f"{source}: not a UEGAN {what} (no {key!r} convolution)")
    return first


def generator_from_published(state: Mapping[str, torch.Tensor], source: str = "checkpoint"
                             ) -> tuple[GeneratorConfig, StateDict]:
    """Map a published generator state dict to (config, state dict of :class:`Generator`)."""
    state = strip_parallel_prefix(state)
    first = _first_convolution(state, "enc1.main.1.weight", "generator", source)
    config = GeneratorConfig(conv_dim=int(first.shape[0]),
                             se_after_ga5=any(key.startswith("se.") for key in state))
    return config, _rename(state, generator_key_table(config.se_after_ga5), "generator", source)


def generator_to_published(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Own generator state dict -> published names (the inverse of the above)."""
    table = generator_key_table(any(key.startswith("se.") for key in state))
    return _rename(state, {own: pub for pub, own in table.items()}, "generator", "state dict")


def discriminator_from_published(state: Mapping[str, torch.Tensor], source: str = "checkpoint"
                                 ) -> tuple[DiscriminatorConfig, StateDict]:
    """Map a published discriminator state dict to (config, state dict of :class:`Discriminator`)."""
    state = strip_parallel_prefix(state)
    first = _first_convolution(state, "d1.0.1.weight_orig", "discriminator", source)
    config = DiscriminatorConfig(conv_dim=int(first.shape[0]))
    return config, _rename(state, discriminator_key_table(), "discriminator", source)


def discriminator_to_published(state: Mapping[str, torch.Tensor]) -> StateDict:
    table = discriminator_key_table()
    return _rename(state, {own: pub for pub, own in table.items()}, "discriminator", "state dict")
