"""Speed-ups of the generator's forward pass for enhancement: exact layer rewrites
(``uegan.models.fast``), channels-last memory format, bf16 / fp16 autocast and torch.compile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from uegan.models.fast import skip_inert_attention, use_conv_first_upsample
from uegan.runtime import (autocast, channels_last_input, check_precision, compile_module,
                           configure_threads, to_channels_last)


@dataclass(frozen=True)
class InferenceAcceleration:
    """Speed-ups of the generator's forward pass for enhancement (defaults: none)."""

    compile: bool = False
    channels_last: bool = False
    conv_first_upsample: bool = False
    skip_inert_gam: bool = False
    precision: str = "fp32"
    threads: int | None = None
    dynamic: bool | None = False      # None: a shape-generic graph after the second size
    freeze_weights: bool = True       # with compile: weights as graph constants (inductor freezing)
    compile_mode: str | None = None
    cache_dir: str | None = None

    @classmethod
    def fast(cls, **overrides: Any) -> "InferenceAcceleration":
        """Every exact fp32 speed-up: torch.compile, the conv-first upsampling and the GAM without
        its inert branch (the trade-offs are in benchmarks/RESULTS.md)."""
        values: dict[str, Any] = dict(compile=True, conv_first_upsample=True, skip_inert_gam=True)
        values.update(overrides)
        return cls(**values)


class AcceleratedGenerator(nn.Module):
    """Wraps a prepared generator: inputs to the chosen memory format, forward under autocast,
    output back to float32 and the standard (contiguous) layout.

    Attribute access falls through to the wrapped generator (``config``, ``ga1`` ... so that
    code that walks the generator's modules, such as tiled enhancement, keeps working).
    """

    def __init__(self, generator: nn.Module, options: InferenceAcceleration):
        super().__init__()
        self.generator = generator
        self.options = options

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["generator"], name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = channels_last_input(x, self.options.channels_last)
        with autocast(self.options.precision, x.device.type):
            y = self.generator(x)
        return y.to(dtype).contiguous()


def prepare_generator_for_inference(generator: nn.Module,
                                    options: InferenceAcceleration = InferenceAcceleration()
                                    ) -> nn.Module:
    """``generator`` (modified in place: eval mode, module swaps, compile) behind a small
    wrapper that applies the memory format and the precision. Its parameters are shared, so
    the generator must not be trained afterwards (the compiled graph holds frozen weights).
    """
    configure_threads(options.threads)
    check_precision(options.precision)
    generator.eval()
    if options.conv_first_upsample:
        use_conv_first_upsample(generator)
    if options.skip_inert_gam:
        skip_inert_attention(generator)
    if options.channels_last:
        to_channels_last(generator)
    if options.compile:
        compile_module(generator, mode=options.compile_mode, dynamic=options.dynamic,
                       freezing=options.freeze_weights, cache_dir=options.cache_dir)
    if not options.channels_last and options.precision == "fp32":
        return generator
    return AcceleratedGenerator(generator, options)
