"""One UEGAN training step, in the published order (spec, "One training step").

1. ``fake = G(low)``; ``pooled = pool.query(fake)``.
2. D step: ``D(high)``, ``D(pooled.detach())``, ``D(low)`` (three forward calls, three power
   iterations), ``L_D = rahinge_D(real, pooled) + rahinge_D(real, low)``, D optimiser step.
3. G step with the updated D: ``D(high)``, ``D(fake)``, fidelity on ``(fake, low)``, identity on
   ``(G(high), high)``; ``L_G = 0.1 adv + 1.0 fidelity + 0.1 identity``; G optimiser step.

The speed-ups of a step are the fields of :class:`StepOptions` (defaults: the published step).
In fp32 none changes what is computed beyond floating-point rounding: the golden tests pass with
every fp32 option on (``tests/test_acceleration.py``). Figures: ``benchmarks/RESULTS.md``::

    options = StepOptions.fast()
    apply_step_options(generator, discriminator, fidelity, options)      # before DDP wrapping
    opt_g, opt_d = make_optimizers(generator, discriminator, settings, fused=options.fused)
    train_step(..., mixed_precision(options.precision, device.type), options=options)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from uegan.losses import FidelityLoss, IdentityCriterion, identity_loss, rahinge_d_loss, rahinge_g_loss
from uegan.models.fast import use_conv_first_upsample, use_output_scaled_spectral_norm
from uegan.runtime import (check_precision, compile_module, configure_threads, grad_scaler,
                           precision_dtype, to_channels_last)


@dataclass(frozen=True)
class StepOptions:
    """Speed-ups of a training step and its runtime options. The defaults: the published step.

    ``freeze_d_in_g_step``: D's parameters frozen in the G step (the same G update, no D weight
    gradients). ``fused_adam``: the fused Adam kernel. ``conv_first_upsample`` (G) and
    ``output_scaled_spectral_norm`` (D): exact layer rewrites (:mod:`uegan.models.fast`).
    ``channels_last``: NHWC memory format. ``compile``: ``torch.compile`` of G, D and (with
    ``compile_vgg``) VGG19. ``precision``: fp32, or bf16 / fp16 autocast.
    ``batch_d_calls``: D's calls of the D step (and, with ``batch_d_in_g_step``, of the G step)
    as one call on the joined batch, one power iteration per original call
    (:meth:`uegan.models.discriminator.Discriminator.forward`). ``batch_g_calls``: G(low) and
    G(high) as one call (G's weights do not change between them; every layer is per sample).
    """

    compile: bool = False
    compile_vgg: bool = True
    channels_last: bool = False
    conv_first_upsample: bool = False
    output_scaled_spectral_norm: bool = False
    freeze_d_in_g_step: bool = False
    fused_adam: bool = False
    batch_d_calls: bool = False
    batch_d_in_g_step: bool = False
    batch_g_calls: bool = False
    precision: str = "fp32"
    threads: int | None = None
    compile_mode: str | None = None
    cache_dir: str | None = None

    @classmethod
    def fast(cls, **overrides: Any) -> "StepOptions":
        """Every exact fp32 option that pays on this project's CPU measurements
        (benchmarks/RESULTS.md), not ``compile``: on the CPU a compiled step is slower than the
        same step eager (convolutions and their backward dominate, and inductor calls the same
        oneDNN kernels for them). Pass ``compile=True`` to add it. ``batch_d_in_g_step`` and
        ``batch_g_calls`` are exact too but measured slower there (D's joined G-step call
        computes a gradient to ``high`` nobody needs; G scales linearly with the batch)."""
        values: dict[str, Any] = dict(conv_first_upsample=True, output_scaled_spectral_norm=True,
                                      freeze_d_in_g_step=True, fused_adam=True,
                                      batch_d_calls=True)
        values.update(overrides)
        return cls(**values)

    @property
    def fused(self) -> bool | None:
        """The ``fused`` argument of :func:`make_optimizers` (None: torch's default)."""
        return True if self.fused_adam else None

    def step_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`train_step` (for callers that pass options generically)."""
        return {"options": self}

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`make_optimizers`."""
        return {"fused": True} if self.fused_adam else {}


def apply_step_options(generator: nn.Module, discriminator: nn.Module,
                       fidelity: nn.Module | None, options: StepOptions) -> None:
    """Apply ``options`` to the three networks, in place (before any DDP wrapping).

    The networks keep their parameters and state-dict keys: checkpoints, optimisers and the
    golden numerics stay as they are. The inputs of a channels-last run should be made
    channels-last too (:func:`uegan.runtime.channels_last_input`); the networks accept either.
    """
    configure_threads(options.threads)
    check_precision(options.precision)
    if options.conv_first_upsample:
        use_conv_first_upsample(generator)
    if options.output_scaled_spectral_norm:
        use_output_scaled_spectral_norm(discriminator)
    networks = [m for m in (generator, discriminator, fidelity) if m is not None]
    if options.channels_last:
        to_channels_last(*networks)
    if options.compile:
        compile_module(generator, mode=options.compile_mode, cache_dir=options.cache_dir)
        compile_module(discriminator, mode=options.compile_mode, cache_dir=options.cache_dir)
        vgg = getattr(fidelity, "vgg", None)
        if options.compile_vgg and isinstance(vgg, nn.Module):
            compile_module(vgg, mode=options.compile_mode, cache_dir=options.cache_dir)


@dataclass(frozen=True)
class LossWeights:
    adversarial: float = 0.1
    fidelity: float = 1.0
    identity: float = 0.1


@dataclass(frozen=True)
class OptimizerSettings:
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4  # coupled L2, as torch.optim.Adam applies it


def make_optimizers(generator: nn.Module, discriminator: nn.Module,
                    settings: OptimizerSettings = OptimizerSettings(), *,
                    fused: bool | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and for D. ``fused=True``: the fused implementation (one kernel per step;
    same update up to rounding; :attr:`StepOptions.fused`)."""
    betas = (settings.beta1, settings.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.g_lr, betas=betas,
                             weight_decay=settings.weight_decay, fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=settings.d_lr, betas=betas,
                             weight_decay=settings.weight_decay, fused=fused)
    return opt_g, opt_d


def lr_factor(epoch: int, total_epochs: int = 100, decay_epochs: int = 50) -> float:
    """Learning-rate factor of 0-based ``epoch``: 1 until the decay starts, then linear to 0."""
    decay_start = total_epochs - decay_epochs
    return 1.0 - max(0, epoch + 1 - decay_start) / decay_epochs


def schedule_factor(epoch: int, total_epochs: int, decay_epochs: int) -> float:
    """:func:`lr_factor`, 0 past the end of the schedule, 1 throughout without decay."""
    return 1.0 if decay_epochs == 0 else max(0.0, lr_factor(epoch, total_epochs, decay_epochs))


def set_learning_rates(factor: float, *optimizers: tuple[torch.optim.Optimizer, float]) -> None:
    """Each ``(optimizer, base learning rate)``: every group's rate set to ``base * factor``."""
    for optimizer, base in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = base * factor


class ImagePool:
    """CycleGAN-style history of generated images (Shrivastava et al.).

    While not full it stores and returns each image; afterwards, per image, with probability
    0.5 it returns a random stored image and keeps the new one in its place, else it returns
    the new image. Its random numbers come from its own generator, saved with its state.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                index = self.rng.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict[str, Any]:
        stored = torch.cat(self.images) if self.images else torch.empty(0)
        return {"size": self.size, "images": stored.cpu(), "rng": list(self.rng.getstate()[1]),
                "rng_version": self.rng.getstate()[0], "rng_gauss": self.rng.getstate()[2]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        stored = state["images"]
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []
        self.rng.setstate((state["rng_version"], tuple(state["rng"]), state["rng_gauss"]))


@dataclass
class StepLosses:
    """The weighted loss terms of one step (detached scalars)."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    g_adv_loss: torch.Tensor
    g_fidelity_loss: torch.Tensor
    g_identity_loss: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(value) for name, value in vars(self).items()}


class MixedPrecision:
    """Autocast around the forward passes (``dtype`` bf16 or fp16) and, with a ``scaler``
    (``torch.amp.GradScaler``, for fp16), loss scaling for both optimisers. ``dtype=None``:
    full precision, the published setting."""

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype | None = None,
                 scaler: torch.amp.GradScaler | None = None):
        self.device_type = device_type
        self.dtype = dtype
        self.scaler = scaler

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per training step, after both optimiser steps."""
        if self.scaler is not None:
            self.scaler.update()


FULL_PRECISION = MixedPrecision()


def mixed_precision(precision: str, device_type: str = "cpu") -> MixedPrecision:
    """The ``precision`` argument of :func:`train_step` for a precision name (fp16: with loss
    scaling)."""
    return MixedPrecision(device_type, precision_dtype(precision), grad_scaler(precision, device_type))


@contextlib.contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` (unwrapped from DistributedDataParallel: nothing to synchronise) with every
    parameter's ``requires_grad`` off for the duration; forward calls made inside build no
    graph towards those parameters, so a later backward computes no gradient for them."""
    plain = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    frozen = [p for p in plain.parameters() if p.requires_grad]
    for param in frozen:
        param.requires_grad_(False)
    try:
        yield plain
    finally:
        for param in frozen:
            param.requires_grad_(True)


class NoFidelity(nn.Module):
    """Stands in for the fidelity loss when its weight is 0 (an ablation): zero, no VGG19."""

    def forward(self, x01: torch.Tensor, _y01: torch.Tensor) -> torch.Tensor:
        return x01.new_zeros(())


def to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (image + 1) / 2


def _generator_calls(generator: nn.Module, low: torch.Tensor, high: torch.Tensor,
                     joined: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``G(low)`` and, when ``joined``, ``G(high)`` from the same call on the joined batch
    (else None: the G step calls ``G(high)`` itself, as the published code does)."""
    if not joined:
        return generator(low), None
    fake, identity_out = generator(torch.cat([low, high])).split([low.shape[0], high.shape[0]])
    return fake, identity_out


def discriminator_calls(discriminator: nn.Module, inputs: list[torch.Tensor],
                        joined: bool) -> list[list[torch.Tensor]]:
    """``[D(x) for x in inputs]`` in order; when ``joined``, from one call on the joined batch
    that runs one power iteration per input (``Discriminator.forward``'s ``calls``)."""
    if not joined or len(inputs) == 1:
        return [discriminator(x) for x in inputs]
    sizes = [x.shape[0] for x in inputs]
    scores = discriminator(torch.cat(inputs), calls=sizes)
    return [list(call) for call in zip(*(score.split(sizes) for score in scores), strict=True)]


def train_step(generator: nn.Module, discriminator: nn.Module, fidelity: FidelityLoss,
               pool: ImagePool, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               low: torch.Tensor, high: torch.Tensor,
               identity_criterion: IdentityCriterion = "l1",
               weights: LossWeights = LossWeights(), adversarial_input: bool = True,
               precision: MixedPrecision | None = None, *,
               options: StepOptions | None = None,
               freeze_d_in_g_step: bool | None = None) -> StepLosses:
    """One D update and one G update on a batch of low- and high-quality images in [-1, 1].

    ``precision`` (optional) runs the forward passes under autocast and scales the losses;
    without it everything runs in the tensors' own precision. Of ``options`` the step itself
    uses ``freeze_d_in_g_step`` (D with frozen parameters in the G step, see below) and the
    joined calls (``batch_d_calls``, ``batch_d_in_g_step``, ``batch_g_calls``); the same
    updates up to rounding, less work. (The other options act on the networks and the
    optimisers, set up before the first step.) ``freeze_d_in_g_step`` given alone overrides
    ``options``' field.
    """
    amp = precision if precision is not None else FULL_PRECISION
    options = options if options is not None else StepOptions()
    if freeze_d_in_g_step is None:
        freeze_d_in_g_step = options.freeze_d_in_g_step
    with amp.autocast():
        fake, identity_out = _generator_calls(generator, low, high, options.batch_g_calls)
    pooled = pool.query(fake)

    # D step: real high-quality vs pooled fakes, and (published default) vs the raw inputs
    opt_d.zero_grad(set_to_none=True)
    with amp.autocast():
        d_inputs = [high, pooled.detach()] + ([low] if adversarial_input else [])
        real_scores, *fake_scores = discriminator_calls(discriminator, d_inputs,
                                                        options.batch_d_calls)
        d_loss = rahinge_d_loss(real_scores, fake_scores[0])
        if adversarial_input:
            d_loss = d_loss + rahinge_d_loss(real_scores, fake_scores[1])
    amp.backward(d_loss)
    amp.step(opt_d)

    # G step against the updated D. D's parameters receive gradients here too (as in the
    # published code); the next D step zeroes them before use. With ``freeze_d_in_g_step``
    # they are frozen instead: no D weight gradients, and D(high) builds no graph.
    opt_g.zero_grad(set_to_none=True)
    with amp.autocast():
        with (frozen_parameters(discriminator) if freeze_d_in_g_step
              else contextlib.nullcontext(discriminator)) as d_for_g:
            g_real, g_fake = discriminator_calls(d_for_g, [high, fake],
                                                 options.batch_d_calls and options.batch_d_in_g_step)
            g_adv = weights.adversarial * rahinge_g_loss(g_real, g_fake)
        g_fid = weights.fidelity * fidelity(to_unit_range(fake), to_unit_range(low))
        if identity_out is None:
            identity_out = generator(high)
        g_idt = weights.identity * identity_loss(identity_out, high, identity_criterion)
        g_loss = g_adv + g_fid + g_idt
    amp.backward(g_loss)
    amp.step(opt_g)
    amp.update()

    return StepLosses(d_loss.detach(), g_loss.detach(), g_adv.detach(), g_fid.detach(),
                      g_idt.detach())
