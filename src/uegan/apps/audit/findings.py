"""Recognising the known findings of the published model in an audit, by structure: every
global attention module and squeeze-and-excitation block is asked which of its parameters form
its global branch (``global_entries``), never read by name or class."""

from __future__ import annotations

import torch
from torch import nn

from uegan.apps.audit.report import AuditReport, Finding
from uegan.models.generator import DIVISOR
from uegan.models.layers import GlobalAttentionBase


def _inert_global_branches(model: nn.Module, zero_masks: dict[str, torch.Tensor]
                           ) -> dict[str, dict[str, torch.Tensor]]:
    """GAM name -> its global entries (own parameter name -> mask), for every GAM whose global
    branch is inert by structure (``global_branch_inert``) and whose zero-gradient entries are
    exactly those of its global branch: all of them zero, and none of the local term's."""
    inert = {}
    for name, module in model.named_modules():
        if not (isinstance(module, GlobalAttentionBase) and module.global_branch_inert):
            continue
        entries = module.global_entries()
        if entries and all(torch.equal(zero_masks[f"{name}.{param}"], mask)
                           for param, mask in entries.items()):
            inert[name] = entries
    return inert


def _branch_modules(model: nn.Module, gam: str, entries: dict[str, torch.Tensor]) -> list[str]:
    """The submodules of ``gam`` all of whose own parameters lie wholly in its global branch."""
    names = []
    for name, module in model.get_submodule(gam).named_modules():
        own = [f"{name}.{param}" for param, _ in module.named_parameters(recurse=False)]
        if name and own and all(p in entries and bool(entries[p].all()) for p in own):
            names.append(f"{gam}.{name}")
    return names


def _gam_finding(model: nn.Module, report: AuditReport, zero_masks: dict[str, torch.Tensor],
                 explained: set[str]) -> Finding | None:
    """The inert global branches of the published GAMs (spec, Findings), if any."""
    inert = _inert_global_branches(model, zero_masks)
    if not inert:
        return None
    by_name = {p.name: p for p in report.parameters}
    change_of = {m.name: m.output_change for m in report.modules}
    whole = [f"{gam}.{p}" for gam, entries in inert.items()
             for p, mask in entries.items() if bool(mask.all())]
    modules = [m for gam, entries in inert.items() for m in _branch_modules(model, gam, entries)]
    explained.update(f"{gam}.{p}" for gam, entries in inert.items() for p in entries)
    explained.update(modules)
    worst_grad = max(by_name[p].grad_relative for p in whole)
    worst_ratio = max(by_name[p].precision_ratio for p in whole)
    worst_change = max((change_of[m] for m in modules if m in change_of), default=0.0)
    entries = next(iter(inert.values()))
    parts = ", ".join([p for p, mask in entries.items() if bool(mask.all())]
                      + [f"the global part of {p}" for p, mask in entries.items()
                         if not bool(mask.all())])
    return Finding(
        "gam-global-branch-inert", list(inert),
        f"GAM global branch inert in {', '.join(inert)}: {parts} have zero gradient (largest "
        f"|grad| {worst_grad:.1e} of the network's largest, float64 / float32 ratio at most "
        f"{worst_ratio:.1e}: rounding noise); perturbing the branch's layers changes the output "
        f"by at most {worst_change:.1e}. The InstanceNorm after the local term removes the "
        f"per-channel constant that the global vector adds (spec, Findings).")


def recognise_findings(model: nn.Module, report: AuditReport, zero_masks: dict[str, torch.Tensor]
              ) -> list[Finding]:
    by_name = {p.name: p for p in report.parameters}
    threshold = report.settings["output_threshold"]
    explained: set[str] = set()
    findings: list[Finding] = []

    gam_finding = _gam_finding(model, report, zero_masks, explained)
    inert_gams = gam_finding.modules if gam_finding is not None else []
    if gam_finding is not None:
        findings.append(gam_finding)

    for name, stats in report.excitations.items():
        weights = [p for p in report.parameters if p.name.startswith(f"{name}.")]
        if weights and all(p.zero_gradient for p in weights) \
                and stats["max_abs_excitation_minus_half"] < 1e-6:
            explained.update([p.name for p in weights] + [m.name for m in report.modules
                                                          if m.name.startswith(f"{name}.")])
            findings.append(Finding(
                "se-constant-half", [name],
                f"SE block {name} is a constant factor 0.5: its input's channel means are at most "
                f"{stats['max_abs_channel_mean']:.1e} (an InstanceNorm output), so the excitation "
                f"is 0.5 for every channel (largest |sigmoid - 0.5| "
                f"{stats['max_abs_excitation_minus_half']:.1e}) and its weights have zero gradient "
                f"(largest |grad| {max(p.grad_relative for p in weights):.1e} of the network's "
                f"largest)."))

    dead_blocks = {name: units for name, units in report.inactive_hidden_units.items()
                   if units and name not in inert_gams}
    if dead_blocks:
        for name in dead_blocks:
            explained.update(p.name for p in report.parameters if p.name.startswith(f"{name}."))
            explained.update(m.name for m in report.modules if m.name.startswith(f"{name}."))
        hidden_sizes = {name: _hidden_size(model.get_submodule(name)) for name in dead_blocks}
        findings.append(Finding(
            "inactive-hidden-units", sorted(dead_blocks),
            "hidden ReLU units that no audit input activates (their weights, and the weights "
            "reading them, get no gradient at these weights; data- and weight-dependent, not "
            "structural): " + ", ".join(f"{name} {len(units)}/{hidden_sizes[name]}"
                                        for name, units in sorted(dead_blocks.items()))
            + ". Where all of a block's units are inactive, its global vector is zero."))

    enc5_bias = by_name.get("enc5.conv.bias")
    if enc5_bias is not None and enc5_bias.partly_zero and "ga5" in inert_gams \
            and getattr(model, "se_pre", None) is None:
        explained.add(enc5_bias.name)
        weight_note = ""
        weight_mask = zero_masks.get("enc5.conv.weight")
        if weight_mask is not None and bool(weight_mask.any()):
            rows = weight_mask.flatten(1).any(dim=1)
            if not bool((rows & ~zero_masks[enc5_bias.name]).any()):  # only in those channels
                explained.add("enc5.conv.weight")
                weight_note = (f" (and {int(weight_mask.sum())} weight entries of those channels, "
                               f"taps that read the same value at every position of the small map)")
        findings.append(Finding(
            "enc5-bias-normalised", ["enc5.conv"],
            f"enc5.conv.bias: {enc5_bias.zero_entries}/{enc5_bias.numel} channels get no gradient"
            f"{weight_note}. "
            f"enc5's output reaches the decoder only through ga5's InstanceNorm; where a "
            f"channel's LeakyReLU is linear over the whole "
            f"{report.settings['size'] // DIVISOR}x{report.settings['size'] // DIVISOR} map, its "
            f"bias is a per-channel constant that the norm removes (data-dependent; fewer "
            f"channels at larger --size)."))

    unexplained_params = [p.name for p in report.parameters
                          if (p.zero_gradient or p.partly_zero or p.output_change <= threshold)
                          and p.name not in explained]
    unexplained_modules = [m.name for m in report.modules
                           if m.output_change <= threshold and m.name not in explained]
    if unexplained_params or unexplained_modules:
        findings.append(Finding(
            "unexplained", unexplained_params + unexplained_modules,
            "not explained by a known finding: "
            + ", ".join(unexplained_params + unexplained_modules)
            + " (partly zero gradients can depend on the data: ReLU units that no input of this "
              "audit activates, or biases of a layer whose output is instance-normalised, for "
              "channels whose activation is linear over the whole map; try a larger --size, "
              "more --batches or another --seed)"))
    return findings


def _hidden_size(module: nn.Module) -> int:
    return int(module.relu_hidden_layer().weight.shape[0])
