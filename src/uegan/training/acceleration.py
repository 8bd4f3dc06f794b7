"""Speed-ups of a training step, each behind an explicit option (defaults: the published step).

In fp32 none changes what is computed beyond floating-point rounding: the golden tests pass
with every fp32 option on (``tests/test_acceleration.py``). Figures: ``benchmarks/RESULTS.md``.

For the trainer (``uegan train --fast-step [--compile]`` does this)::

    options = TrainingAcceleration.fast()
    accelerate_training(generator, discriminator, fidelity, options)      # before DDP wrapping
    opt_g, opt_d = make_optimizers(generator, discriminator, settings, **options.optimizer_kwargs())
    train_step(..., **options.step_kwargs())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from uegan.models.fast import use_conv_first_upsample, use_output_scaled_spectral_norm
from uegan.runtime import check_precision, compile_module, configure_threads, to_channels_last



@dataclass(frozen=True)
class TrainingAcceleration:
    """Speed-ups of a training step. The defaults change nothing (the published step)."""

    compile: bool = False
    compile_vgg: bool = True          # with ``compile``: VGG19 too
    channels_last: bool = False
    conv_first_upsample: bool = False
    output_scaled_spectral_norm: bool = False
    freeze_d_in_g_step: bool = False
    fused_adam: bool = False
    precision: str = "fp32"
    threads: int | None = None
    compile_mode: str | None = None
    cache_dir: str | None = None

    @classmethod
    def fast(cls, **overrides: Any) -> "TrainingAcceleration":
        """The fp32 options that pay on this project's CPU measurements (benchmarks/RESULTS.md):
        every exact one, not ``compile`` (on the CPU a compiled step measured 1.11x slower than
        the same step eager: convolutions and their backward dominate, and inductor calls the
        same oneDNN kernels for them). Pass ``compile=True`` to add it (worth measuring on a GPU)."""
        values: dict[str, Any] = dict(conv_first_upsample=True, output_scaled_spectral_norm=True,
                                      freeze_d_in_g_step=True, fused_adam=True)
        values.update(overrides)
        return cls(**values)

    def step_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`uegan.training.step.train_step`."""
        return {"freeze_d_in_g_step": self.freeze_d_in_g_step}

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`uegan.training.step.make_optimizers`."""
        return {"fused": True} if self.fused_adam else {}


def accelerate_training(generator: nn.Module, discriminator: nn.Module, fidelity: nn.Module | None,
                        options: TrainingAcceleration) -> None:
    """Apply ``options`` to the three networks, in place (before any DDP wrapping).

    The networks keep their parameters and state-dict keys: checkpoints, optimisers and the
    golden numerics stay as they are. The inputs of a channels-last run should be made
    channels-last too (:func:`channels_last_input`); the networks accept either.
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
