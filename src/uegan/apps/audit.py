"""Find the parts of a generator that do nothing: zero gradients and perturbations without effect.

``audit_generator`` runs a few random batches through a generator (in float64, so that "exactly
zero up to rounding" and "small" are many orders of magnitude apart) and measures

- **gradients**: for each batch, a random-direction loss ``sum(G(x) * r)`` (r ~ N(0, 1)) is
  back-propagated, once in float64 and once in float32, and ``|grad|`` accumulated per entry. A
  gradient that is zero up to rounding (a sum that cancels exactly, as behind an InstanceNorm) is
  rounding noise, about 1e9 times smaller in float64 than in float32; a real gradient, however
  small, is the same in both. So an entry counts as having zero gradient when its float64 value
  is at most ``grad_ratio`` (default 1e-4) times its float32 value, or exactly zero. Where the
  ratio lies between 1e-4 and 0.1 (a float32 rounding residue can itself cancel by accident) or
  float32 gives exactly zero, the entry counts as zero only if its float64 value is at most 1e-12
  times the network's largest. A ratio of 0.1 or more (the precisions agree) is always live:
  the test does not depend on the gradient's scale, which varies by orders of magnitude with
  depth (a generator under the published gain-0.02 init has live gradients of 1e-30). A
  parameter is *zero-gradient* when all its entries are, *partly zero* when some are.
- **perturbations**: each parameter tensor, and each module's own parameters together, are
  replaced by ``-3 p + s n`` (n ~ N(0, 1), s = rms(p), or 0.1 where p is all zero), and the
  largest ``|G'(x) - G(x)|`` on the first batch is measured; at most ``output_threshold``
  (default 1e-9, outputs are in [-1, 1]) counts as *no effect*.

Known findings of the published model (spec, "Findings") are recognised by structure, not by
variant name, so the audit works on any variant or checkpoint:

- a published GAM (``GlobalAttention``) whose global branch (``reduce``, ``expand``, the global
  half of ``fuse.weight``, ``fuse.bias``) has zero gradient: cancelled by the InstanceNorm;
- a squeeze-and-excitation block whose weights have zero gradient and whose excitation is 0.5 for
  every channel: a constant factor 0.5 (its input has zero channel means).

Everything else that is flagged is listed as not explained by a known finding.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from uegan.errors import UserError
from uegan.models.generator import DIVISOR, Generator
from uegan.models.init import init_orthogonal
from uegan.models.layers import GlobalAttention, SqueezeExcitation

log = logging.getLogger(__name__)

GRAD_RATIO = 1e-4         # float64 / float32 |grad| at or below this: rounding noise, i.e. zero
GRAD_FLOOR = 1e-12        # where the ratio is unclear: float64 at most this x the largest
AGREEMENT = 0.1           # float64 / float32 at or above this: the two precisions agree, live
OUTPUT_THRESHOLD = 1e-9
PERTURB_FACTOR = -3.0
ZERO_PARAM_NOISE = 0.1
INITS = ("generic", "default", "orthogonal")


@dataclass
class ParameterAudit:
    name: str
    shape: list[int]
    grad_max: float          # largest accumulated float64 |grad| of an entry
    grad_relative: float     # grad_max / the network's largest accumulated float64 |grad|
    precision_ratio: float   # grad_max / the same in float32: ~1 live, ~1e-9 (or 0) rounding noise
    zero_entries: int        # entries with zero gradient (see the module docstring)
    output_change: float     # max |delta output| when this tensor alone is perturbed

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def zero_gradient(self) -> bool:
        return self.zero_entries == self.numel

    @property
    def partly_zero(self) -> bool:
        return 0 < self.zero_entries < self.numel


@dataclass
class ModuleAudit:
    name: str
    kind: str
    parameters: list[str]
    # max |delta output| when all its own parameters are perturbed together; for a module one of
    # whose parameters alone changes the output, the largest such single-parameter change
    output_change: float


@dataclass
class Finding:
    key: str                 # "gam-global-branch-inert", "se-constant-half", "unexplained"
    modules: list[str]
    text: str


@dataclass
class AuditReport:
    source: str
    variant: str | None
    generator_config: dict[str, Any]
    settings: dict[str, Any]
    parameters: list[ParameterAudit]
    modules: list[ModuleAudit]
    findings: list[Finding] = field(default_factory=list)
    excitations: dict[str, dict[str, float]] = field(default_factory=dict)
    # attention block -> indices of its hidden ReLU units that no audit input activated
    inactive_hidden_units: dict[str, list[int]] = field(default_factory=dict)

    @property
    def zero_gradient(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.zero_gradient]

    @property
    def partly_zero(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.partly_zero]

    @property
    def inert_parameters(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.output_change <= self.settings["output_threshold"]]

    @property
    def inert_modules(self) -> list[ModuleAudit]:
        return [m for m in self.modules if m.output_change <= self.settings["output_threshold"]]

    def margins(self) -> dict[str, float | None]:
        """How far apart the flagged and the live values are (the thresholds sit in between)."""
        live_grad = [p.precision_ratio for p in self.parameters if not p.zero_gradient]
        dead_grad = [p.precision_ratio for p in self.parameters if p.zero_gradient]
        threshold = self.settings["output_threshold"]
        live_change = [m.output_change for m in self.modules if m.output_change > threshold]
        dead_change = [m.output_change for m in self.modules if m.output_change <= threshold]
        return {
            "largest_f64_f32_grad_ratio_of_zero_gradient_parameters": max(dead_grad, default=None),
            "smallest_f64_f32_grad_ratio_of_live_parameters": min(live_grad, default=None),
            "largest_output_change_of_inert_modules": max(dead_change, default=None),
            "smallest_output_change_of_live_modules": min(live_change, default=None),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for entry, parameter in zip(data["parameters"], self.parameters):
            entry.update(numel=parameter.numel, zero_gradient=parameter.zero_gradient,
                         inert=parameter.output_change <= self.settings["output_threshold"])
        threshold = self.settings["output_threshold"]
        for entry, module in zip(data["modules"], self.modules):
            entry["inert"] = module.output_change <= threshold
        data["margins"] = self.margins()
        return data

    def format_text(self, show_all: bool = False) -> str:
        return _format_report(self, show_all)


# ---------------------------------------------------------------------------------------------
# building what to audit


@torch.no_grad()
def randomize_generic(model: nn.Module, seed: int = 0) -> None:
    """Every parameter at random, zero-initialised ones included: weights N(0, 1 / fan_in),
    vectors N(0, 0.1^2). A generic point, where no gradient is zero by accident of the init."""
    rng = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        if param.ndim >= 2:
            fan_in = param[0].numel()
            param.copy_(torch.randn(param.shape, generator=rng, dtype=param.dtype) / math.sqrt(fan_in))
        else:
            param.copy_(torch.randn(param.shape, generator=rng, dtype=param.dtype) * 0.1)


def build_for_audit(target: str, conv_dim: int = 8, init: str = "generic", seed: int = 0
                    ) -> tuple[Generator, str | None, str]:
    """(generator, variant name, description) for a variant name or a checkpoint file."""
    from uegan.variants import VARIANTS, get_variant

    path = Path(target).expanduser()
    if target not in VARIANTS and path.is_file():
        from uegan.checkpoints import load_generator

        loaded = load_generator(path)
        return loaded.generator, loaded.variant, f"checkpoint {path} ({loaded.source_format})"
    if target not in VARIANTS and (path.suffix or "/" in target):
        raise UserError(f"{target}: no such checkpoint file, and not a variant name "
                        f"(known variants: {', '.join(VARIANTS)})")
    variant = get_variant(target)
    if init not in INITS:
        raise UserError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    torch.manual_seed(seed)
    generator = Generator(variant.generator_config(conv_dim))
    if init == "generic":
        randomize_generic(generator, seed)
    elif init == "orthogonal":
        init_orthogonal(generator)
    return generator, variant.name, f"variant {variant.name}, conv_dim {conv_dim}, {init} init (seed {seed})"


# ---------------------------------------------------------------------------------------------
# measuring


def random_images(batch: int, size: int, rng: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Varied random 'photos' in (-1, 1): smooth structure, texture, per-image exposure and tint,
    so that the per-channel statistics differ between images."""
    coarse = torch.randn(batch, 3, max(size // 8, 1), max(size // 8, 1), generator=rng, dtype=dtype)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    texture = torch.randn(batch, 3, size, size, generator=rng, dtype=dtype)
    offset = torch.randn(batch, 3, 1, 1, generator=rng, dtype=dtype) * 0.5
    contrast = torch.rand(batch, 1, 1, 1, generator=rng, dtype=dtype) * 0.8 + 0.2
    return torch.tanh(offset + contrast * (smooth + 0.3 * texture))


def _own_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(module.named_parameters(recurse=False))


@torch.no_grad()
def _output_change(generator: nn.Module, params: Iterable[nn.Parameter], inputs: torch.Tensor,
                   reference: torch.Tensor, rng: torch.Generator) -> float:
    params = list(params)
    saved = [p.detach().clone() for p in params]
    try:
        for p in params:
            rms = float(p.detach().pow(2).mean().sqrt())
            scale = rms if rms > 0 else ZERO_PARAM_NOISE
            p.mul_(PERTURB_FACTOR).add_(torch.randn(p.shape, generator=rng, dtype=p.dtype) * scale)
        return float((generator(inputs) - reference).abs().max())
    finally:
        for p, value in zip(params, saved):
            p.copy_(value)


def audit_generator(generator: Generator, *, source: str = "generator", variant: str | None = None,
                    batches: int = 3, batch_size: int = 2, size: int = 64, seed: int = 0,
                    grad_ratio: float = GRAD_RATIO,
                    output_threshold: float = OUTPUT_THRESHOLD) -> AuditReport:
    """Gradient and perturbation audit of ``generator`` (left unchanged; a float64 copy is used)."""
    if size % DIVISOR or size < DIVISOR:
        raise UserError(f"--size must be a positive multiple of {DIVISOR}, got {size}")
    if batches < 1 or batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    import copy

    model = copy.deepcopy(generator).to(device="cpu", dtype=torch.float64).eval()
    single = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32).eval()
    rng = torch.Generator().manual_seed(seed)
    inputs = [random_images(batch_size, size, rng, torch.float64) for _ in range(batches)]

    # SE blocks: record what they see, to report their excitation; attention blocks: record
    # which hidden ReLU units (after ``reduce`` / ``fc1``) any input activates
    se_inputs: dict[str, list[torch.Tensor]] = {}
    hidden_active: dict[str, torch.Tensor] = {}
    hooks = []

    def record_hidden(name: str, output: torch.Tensor) -> None:
        active = (output.detach() > 0).flatten(2).any(dim=2).any(dim=0) if output.ndim == 4 \
            else (output.detach() > 0).any(dim=0)
        hidden_active[name] = hidden_active.get(name, torch.zeros_like(active)) | active

    for name, module in model.named_modules():
        if isinstance(module, SqueezeExcitation):
            se_inputs[name] = []
            hooks.append(module.register_forward_pre_hook(
                lambda m, args, name=name: se_inputs[name].append(args[0].detach())))
        hidden = getattr(module, "fc1", None) if isinstance(module, SqueezeExcitation) \
            else getattr(module, "reduce", None) if hasattr(module, "global_vector") else None
        if getattr(module, "hidden_activation", "relu") != "relu":
            hidden = None  # no unit is ever inactive under LeakyReLU
        if isinstance(hidden, (nn.Conv2d, nn.Linear)):
            hooks.append(hidden.register_forward_hook(
                lambda m, args, output, name=name: record_hidden(name, output)))

    named = list(model.named_parameters())
    named_single = dict(single.named_parameters())
    accumulated = {name: torch.zeros_like(p) for name, p in named}
    accumulated_single = {name: torch.zeros_like(p) for name, p in named}  # kept in float64
    for x in inputs:
        model.zero_grad(set_to_none=True)
        single.zero_grad(set_to_none=True)
        out = model(x)
        direction = torch.randn(out.shape, generator=rng, dtype=out.dtype)
        (out * direction).sum().backward()
        (single(x.float()) * direction.float()).sum().backward()
        for name, p in named:
            if p.grad is not None:
                accumulated[name] += p.grad.abs()
            if named_single[name].grad is not None:
                accumulated_single[name] += named_single[name].grad.abs().double()
    model.zero_grad(set_to_none=True)
    del single, named_single
    for hook in hooks:
        hook.remove()
    largest = max(float(a.max()) for a in accumulated.values() if a.numel())
    if largest == 0:
        raise UserError(f"{source}: every gradient is zero (is the output clamped everywhere?)")
    zero_masks = {}
    for name, double in accumulated.items():
        single_grad = accumulated_single[name]
        ratio = double / single_grad.clamp(min=torch.finfo(torch.float64).tiny)
        # ratio ~1: live (however small); <= grad_ratio: rounding noise; in between (float32 can
        # itself cancel by accident) or float32 exactly zero: zero only if tiny on any scale
        ambiguous = (single_grad == 0) | ((ratio > grad_ratio) & (ratio < AGREEMENT))
        zero_masks[name] = (double == 0) | ((single_grad > 0) & (ratio <= grad_ratio)) \
            | (ambiguous & (double <= GRAD_FLOOR * largest))

    probe = inputs[0]  # perturbations are measured on the first batch
    with torch.no_grad():
        reference = model(probe)
    parameters = []
    for name, p in named:
        grad_max = float(accumulated[name].max()) if p.numel() else 0.0
        single_max = float(accumulated_single[name].max()) if p.numel() else 0.0
        parameters.append(ParameterAudit(
            name=name, shape=list(p.shape), grad_max=grad_max, grad_relative=grad_max / largest,
            precision_ratio=grad_max / single_max if single_max else (0.0 if grad_max == 0 else math.inf),
            zero_entries=int(zero_masks[name].sum()),
            output_change=_output_change(model, [p], probe, reference, rng)))
    modules = []
    change_of = {p.name: p.output_change for p in parameters}
    for name, module in model.named_modules():
        own = _own_parameters(module)
        if not own or not name:
            continue
        names = [f"{name}.{pname}" for pname, _ in own]
        alone = max(change_of[n] for n in names)
        # one parameter: the module's perturbation is that parameter's, measured above; several,
        # one of which alone changes the output: live (the largest of those changes is shown);
        # otherwise all of them are perturbed together
        change = alone if len(own) == 1 or alone > output_threshold else \
            _output_change(model, [p for _, p in own], probe, reference, rng)
        modules.append(ModuleAudit(name=name, kind=type(module).__name__, parameters=names,
                                   output_change=change))

    excitations = {}
    for name, recorded in se_inputs.items():
        module = model.get_submodule(name)
        with torch.no_grad():
            squeeze = torch.cat([r.mean(dim=(2, 3)) for r in recorded])
            excitation = torch.sigmoid(module.fc2(F.relu(module.fc1(squeeze))))
        excitations[name] = {
            "max_abs_channel_mean": float(squeeze.abs().max()),
            "max_abs_excitation_minus_half": float((excitation - 0.5).abs().max()),
            "excitation_min": float(excitation.min()), "excitation_max": float(excitation.max()),
        }

    config = generator.config.to_dict() if hasattr(generator, "config") else {}
    settings = {"batches": batches, "batch_size": batch_size, "size": size, "seed": seed,
                "dtype": "float64 (gradients also float32)", "grad_ratio": grad_ratio,
                "grad_floor": GRAD_FLOOR,
                "output_threshold": output_threshold, "perturbation": f"p -> {PERTURB_FACTOR:g} p + rms(p) n",
                "largest_accumulated_grad": largest}
    report = AuditReport(source, variant, config, settings, parameters, modules,
                         excitations=excitations,
                         inactive_hidden_units={name: [int(i) for i in torch.nonzero(~active).flatten()]
                                                for name, active in hidden_active.items()})
    report.findings = _findings(model, report, zero_masks)
    return report


# ---------------------------------------------------------------------------------------------
# recognising the known findings


def _gam_global_parts(name: str) -> list[str]:
    return [f"{name}.reduce.weight", f"{name}.expand.weight", f"{name}.fuse.bias"]


def _findings(model: nn.Module, report: AuditReport, zero_masks: dict[str, torch.Tensor]
              ) -> list[Finding]:
    by_name = {p.name: p for p in report.parameters}
    threshold = report.settings["output_threshold"]
    explained: set[str] = set()
    findings: list[Finding] = []

    inert_gams = []
    for name, module in model.named_modules():
        if type(module) is not GlobalAttention:
            continue
        parts = _gam_global_parts(name)
        fuse_mask = zero_masks[f"{name}.fuse.weight"]
        global_half_dead = bool(fuse_mask[:, module.channels:].all())
        local_half_live = not bool(fuse_mask[:, :module.channels].any())
        if all(by_name[p].zero_gradient for p in parts) and global_half_dead and local_half_live:
            inert_gams.append(name)
            explained.update(parts + [f"{name}.fuse.weight", f"{name}.reduce", f"{name}.expand"])
    if inert_gams:
        parts = [p for gam in inert_gams for p in _gam_global_parts(gam)]
        worst_grad = max(by_name[p].grad_relative for p in parts)
        worst_ratio = max(by_name[p].precision_ratio for p in parts)
        branch_modules = [m for m in report.modules
                          if m.name.rsplit(".", 1)[0] in inert_gams
                          and m.name.rsplit(".", 1)[-1] in ("reduce", "expand")]
        worst_change = max((m.output_change for m in branch_modules), default=0.0)
        findings.append(Finding(
            "gam-global-branch-inert", inert_gams,
            f"GAM global branch inert in {', '.join(inert_gams)}: reduce and expand weights, the "
            f"global half of fuse.weight and fuse.bias have zero gradient (largest |grad| "
            f"{worst_grad:.1e} of the network's largest, float64 / float32 ratio at most "
            f"{worst_ratio:.1e}: rounding noise); perturbing reduce/expand changes the output by at most "
            f"{worst_change:.1e}. The InstanceNorm after fuse removes the per-channel constant "
            f"that the global vector adds (spec, Findings)."))

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
    hidden = getattr(module, "fc1", None) or getattr(module, "reduce")
    return int(hidden.weight.shape[0])


# ---------------------------------------------------------------------------------------------
# text output


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _format_report(report: AuditReport, show_all: bool) -> str:
    s = report.settings
    threshold = s["output_threshold"]
    lines = [f"audit of {report.source}",
             f"generator: {report.generator_config}",
             f"{s['batches']} random batches of {s['batch_size']} x {s['size']}x{s['size']}, float64, "
             f"seed {s['seed']}; zero gradient: float64 |grad| <= {s['grad_ratio']:g} x float32 "
             f"|grad| (rounding noise); no effect: max |delta output| <= "
             f"{threshold:g} when perturbed as {s['perturbation']}",
             ""]
    flagged = [p for p in report.parameters
               if show_all or p.zero_gradient or p.partly_zero or p.output_change <= threshold]
    lines.append(f"parameters: {len(report.parameters)}, with zero gradient: "
                 f"{len(report.zero_gradient)}, partly zero: {len(report.partly_zero)}, "
                 f"perturbation without effect: {len(report.inert_parameters)}")
    if flagged:
        rows = [("parameter", "shape", "rel. max |grad|", "f64/f32", "zero-grad entries",
                 "max |d out|", "verdict")]
        for p in flagged:
            verdict = ("zero gradient" if p.zero_gradient else "partly zero" if p.partly_zero
                       else "live")
            if p.output_change <= threshold:
                verdict += ", no effect"
            rows.append((p.name, "x".join(map(str, p.shape)) or "scalar", f"{p.grad_relative:.1e}",
                         f"{p.precision_ratio:.1e}",
                         f"{p.zero_entries}/{p.numel}", f"{p.output_change:.1e}", verdict))
        lines += _table(rows)
    lines.append("")
    modules = [m for m in report.modules if show_all or m.output_change <= threshold]
    lines.append(f"modules with parameters: {len(report.modules)}, perturbation without effect: "
                 f"{len(report.inert_modules)}")
    if modules:
        rows = [("module", "type", "max |d out|", "verdict")]
        for m in modules:
            rows.append((m.name, m.kind, f"{m.output_change:.1e}",
                         "no effect" if m.output_change <= threshold else "live"))
        lines += _table(rows)
    for name, stats in report.excitations.items():
        lines.append(f"\nSE block {name}: excitation in [{stats['excitation_min']:.9f}, "
                     f"{stats['excitation_max']:.9f}], largest |channel mean| of its input "
                     f"{stats['max_abs_channel_mean']:.1e}")
    margins = report.margins()
    lines.append("\nmargins: " + "; ".join(
        f"{key.replace('f64_f32', 'f64/f32').replace('_', ' ')} {value:.1e}"
        for key, value in margins.items() if value is not None))
    lines.append("")
    if report.findings:
        lines.append("findings:")
        lines += [f"- {finding.text}" for finding in report.findings]
    else:
        lines.append("findings: none: every parameter gets gradient and every module changes the output")
    return "\n".join(lines)
