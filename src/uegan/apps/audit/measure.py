"""Building a generator to audit, and measuring its gradients and perturbations (the method is
described in :mod:`uegan.apps.audit`)."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from uegan.apps.audit.findings import recognise_findings
from uegan.apps.audit.report import AuditReport, ModuleAudit, ParameterAudit
from uegan.checkpoints import load_generator
from uegan.errors import UserError
from uegan.models.generator import DIVISOR, Generator
from uegan.models.init import init_orthogonal
from uegan.models.layers import GlobalAttentionBase, SqueezeExcitation
from uegan.variants import VARIANTS, get_variant

log = logging.getLogger(__name__)

GRAD_RATIO = 1e-4         # float64 / float32 |grad| at or below this: rounding noise, i.e. zero
GRAD_FLOOR = 1e-12        # where the ratio is unclear: float64 at most this x the largest
AGREEMENT = 0.1           # float64 / float32 at or above this: the two precisions agree, live
OUTPUT_THRESHOLD = 1e-9
PERTURB_FACTOR = -3.0
ZERO_PARAM_NOISE = 0.1
INITS = ("generic", "default", "orthogonal")


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
    path = Path(target).expanduser()
    if target not in VARIANTS and path.exists():  # a folder or an unreadable file: its UserError
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


class _Recorder:
    """Forward hooks on a model: the inputs of every SE block (to report its excitation) and,
    per attention or SE block, which of its hidden ReLU units any input activates."""

    def __init__(self, model: nn.Module):
        self.se_inputs: dict[str, list[torch.Tensor]] = {}
        self.hidden_active: dict[str, torch.Tensor] = {}
        self.hooks = []
        for name, module in model.named_modules():
            if isinstance(module, SqueezeExcitation):
                self.se_inputs[name] = []
                self.hooks.append(module.register_forward_pre_hook(
                    lambda m, args, name=name: self.se_inputs[name].append(args[0].detach())))
            if isinstance(module, (GlobalAttentionBase, SqueezeExcitation)):
                hidden = module.relu_hidden_layer()  # None: no ReLU units (never inactive)
                if hidden is not None:
                    self.hooks.append(hidden.register_forward_hook(
                        lambda m, args, output, name=name: self._record_hidden(name, output)))

    def _record_hidden(self, name: str, output: torch.Tensor) -> None:
        positive = output.detach() > 0
        active = positive.flatten(2).any(dim=2).any(dim=0) if output.ndim == 4 else positive.any(dim=0)
        self.hidden_active[name] = self.hidden_active.get(name, torch.zeros_like(active)) | active

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()

    def inactive_units(self) -> dict[str, list[int]]:
        return {name: [int(i) for i in torch.nonzero(~active).flatten()]
                for name, active in self.hidden_active.items()}


def _accumulated_gradients(model: nn.Module, single: nn.Module, inputs: list[torch.Tensor],
                           rng: torch.Generator
                           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per parameter, |grad| summed over the batches of a random-direction loss, in float64
    (``model``) and in float32 (``single``, accumulated in float64)."""
    named = list(model.named_parameters())
    named_single = dict(single.named_parameters())
    accumulated = {name: torch.zeros_like(p) for name, p in named}
    accumulated_single = {name: torch.zeros_like(p) for name, p in named}
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
    return accumulated, accumulated_single


def _zero_masks(accumulated: dict[str, torch.Tensor], accumulated_single: dict[str, torch.Tensor],
                largest: float, grad_ratio: float) -> dict[str, torch.Tensor]:
    """Per parameter, which entries have zero gradient (the rule of the package docstring)."""
    masks = {}
    for name, double in accumulated.items():
        single_grad = accumulated_single[name]
        ratio = double / single_grad.clamp(min=torch.finfo(torch.float64).tiny)
        # ratio ~1: live (however small); <= grad_ratio: rounding noise; in between (float32 can
        # itself cancel by accident) or float32 exactly zero: zero only if tiny on any scale
        ambiguous = (single_grad == 0) | ((ratio > grad_ratio) & (ratio < AGREEMENT))
        masks[name] = (double == 0) | ((single_grad > 0) & (ratio <= grad_ratio)) \
            | (ambiguous & (double <= GRAD_FLOOR * largest))
    return masks


def _module_audits(model: nn.Module, parameters: list[ParameterAudit], probe: torch.Tensor,
                   reference: torch.Tensor, rng: torch.Generator, output_threshold: float
                   ) -> list[ModuleAudit]:
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
        modules.append(ModuleAudit(name=name, kind=module._get_name(), parameters=names,
                                   output_change=change))
    return modules


@torch.no_grad()
def _excitations(model: nn.Module, se_inputs: dict[str, list[torch.Tensor]]
                 ) -> dict[str, dict[str, float]]:
    excitations = {}
    for name, recorded in se_inputs.items():
        squeeze = torch.cat([r.mean(dim=(2, 3)) for r in recorded])
        excitation = model.get_submodule(name).excitation(squeeze)
        excitations[name] = {
            "max_abs_channel_mean": float(squeeze.abs().max()),
            "max_abs_excitation_minus_half": float((excitation - 0.5).abs().max()),
            "excitation_min": float(excitation.min()), "excitation_max": float(excitation.max()),
        }
    return excitations


def audit_generator(generator: Generator, *, source: str = "generator", variant: str | None = None,
                    batches: int = 3, batch_size: int = 2, size: int = 64, seed: int = 0,
                    grad_ratio: float = GRAD_RATIO,
                    output_threshold: float = OUTPUT_THRESHOLD) -> AuditReport:
    """Gradient and perturbation audit of ``generator`` (left unchanged; a float64 copy is used)."""
    if size % DIVISOR or size < DIVISOR:
        raise UserError(f"--size must be a positive multiple of {DIVISOR}, got {size}")
    if batches < 1 or batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    model = copy.deepcopy(generator).to(device="cpu", dtype=torch.float64).eval()
    single = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32).eval()
    rng = torch.Generator().manual_seed(seed)
    inputs = [random_images(batch_size, size, rng, torch.float64) for _ in range(batches)]

    recorder = _Recorder(model)
    accumulated, accumulated_single = _accumulated_gradients(model, single, inputs, rng)
    del single
    recorder.remove()
    largest = max(float(a.max()) for a in accumulated.values() if a.numel())
    if largest == 0:
        raise UserError(f"{source}: every gradient is zero (is the output clamped everywhere?)")
    zero_masks = _zero_masks(accumulated, accumulated_single, largest, grad_ratio)

    probe = inputs[0]  # perturbations are measured on the first batch
    with torch.no_grad():
        reference = model(probe)
    parameters = []
    for name, p in model.named_parameters():
        grad_max = float(accumulated[name].max()) if p.numel() else 0.0
        single_max = float(accumulated_single[name].max()) if p.numel() else 0.0
        parameters.append(ParameterAudit(
            name=name, shape=list(p.shape), grad_max=grad_max, grad_relative=grad_max / largest,
            precision_ratio=grad_max / single_max if single_max else (0.0 if grad_max == 0 else math.inf),
            zero_entries=int(zero_masks[name].sum()),
            output_change=_output_change(model, [p], probe, reference, rng)))
    modules = _module_audits(model, parameters, probe, reference, rng, output_threshold)

    config = generator.config.to_dict() if hasattr(generator, "config") else {}
    settings = {"batches": batches, "batch_size": batch_size, "size": size, "seed": seed,
                "dtype": "float64 (gradients also float32)", "grad_ratio": grad_ratio,
                "grad_floor": GRAD_FLOOR,
                "output_threshold": output_threshold, "perturbation": f"p -> {PERTURB_FACTOR:g} p + rms(p) n",
                "largest_accumulated_grad": largest}
    report = AuditReport(source, variant, config, settings, parameters, modules,
                         excitations=_excitations(model, recorder.se_inputs),
                         inactive_hidden_units=recorder.inactive_units())
    report.findings = recognise_findings(model, report, zero_masks)
    return report
