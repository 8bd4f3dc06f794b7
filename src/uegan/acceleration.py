"""Optional speed-ups for training and enhancement, each behind an explicit option.

Nothing here is on by default, and in fp32 none of it changes what is computed beyond
floating-point rounding: the golden tests pass with every fp32 option on
(``tests/test_acceleration.py``). Figures and commands: ``benchmarks/RESULTS.md``.

=======================  =========================================================================
option                   what it does
=======================  =========================================================================
``compile``              ``torch.compile`` of G, D and VGG19, in place (``module.compile()``: the
                         modules, their state-dict keys and the optimisers stay the same). On CPU
                         it needs a C++ compiler; compiled artefacts are cached on disk
                         (:func:`configure_compile_cache`), so only the first run pays the full
                         compile time. For enhancement the weights are frozen into the graph
                         (inductor ``freezing``: constant folding, pre-packed convolution weights).
``channels_last``        NHWC memory format for the networks (and their inputs). Measure first:
                         on CPU oneDNN wins at some sizes and loses at others.
``conv_first_upsample``  G's ``up_k`` = bilinear x2, then a 1x1 convolution; both are linear and
                         bilinear weights sum to 1, so the convolution is run first, on 4x fewer
                         pixels (same result up to rounding; the same parameters).
``output_scaled_sn``     D's spectral norm divides each block's convolution output by sigma
                         instead of its weight (same result up to rounding; the published form
                         makes several passes over each weight per call; :class:`OutputScaledDBlock`).
``skip_inert_gam``       enhancement only: the published GAM's global branch adds a per-channel
                         constant that its InstanceNorm removes (spec, "Findings"), so its output
                         is ``InstanceNorm(W_x * x)``; this skips the global branch.
``freeze_d_in_g_step``   the G step runs D with its parameters frozen: no D weight gradients in
                         the G backward (the published code computes them and the next D step
                         discards them), and ``D(high)`` builds no graph. Same updates.
``fused_adam``           ``torch.optim.Adam(fused=True)``: one kernel per optimiser step.
``precision``            ``fp32`` (published), ``bf16`` or ``fp16`` autocast (fp16 with a
                         ``GradScaler``); see :func:`autocast` and :func:`mixed_precision`.
``threads``              ``torch.set_num_threads``.
=======================  =========================================================================

Measured on this project's 2-core CPU (benchmarks/RESULTS.md, "Performance"): a training step
1.16x faster with :meth:`TrainingAcceleration.fast` (compile made it slower there), 1.60x with
bf16 as well; a 512 x 512 enhancement 1.77x faster with :meth:`InferenceAcceleration.fast`
(compile included), 3.67x with bf16 as well.

For the trainer (``uegan train --fast-step [--compile]`` does this)::

    options = TrainingAcceleration.fast()
    accelerate_training(generator, discriminator, fidelity, options)      # before DDP wrapping
    opt_g, opt_d = make_optimizers(generator, discriminator, settings, **options.optimizer_kwargs())
    train_step(..., **options.step_kwargs())

For enhancement::

    generator = prepare_generator_for_inference(generator, InferenceAcceleration(compile=True))
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from uegan.models.discriminator import DBlock
from uegan.models.layers import LEAKY_SLOPE, NORM_EPS, GlobalAttention, Upsample

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16,
                                                  "fp16": torch.float16}
COMPILE_CACHE_ENV = "UEGAN_COMPILE_CACHE"


# ---------------------------------------------------------------------------------------------
# threads, compile cache


def configure_threads(threads: int | None) -> int:
    """``torch.set_num_threads(threads)`` when given; returns the number in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def default_compile_cache() -> Path:
    """``$UEGAN_COMPILE_CACHE``, else ``<tmp>/uegan-torch-compile-<user>``."""
    explicit = os.environ.get(COMPILE_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    try:
        user = os.getlogin()
    except OSError:
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"uegan-torch-compile-{user}"


def configure_compile_cache(path: str | Path | None = None) -> Path:
    """Where inductor keeps compiled kernels and graphs (``TORCHINDUCTOR_CACHE_DIR``).

    An explicit ``path`` wins; else an existing ``TORCHINDUCTOR_CACHE_DIR`` is kept; else
    :func:`default_compile_cache`. The FX-graph and AOT-autograd caches are switched on, so a
    second process with the same models and shapes skips most of the compile work.
    """
    if path is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(path).expanduser())
    elif not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(default_compile_cache())
    cache = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(inductor_config, "autograd_cache"):
        inductor_config.autograd_cache = True
    return cache


# ---------------------------------------------------------------------------------------------
# precision


def check_precision(precision: str, device_type: str = "cpu") -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``bf16`` / ``fp16``; a no-op context for ``fp32``."""
    check_precision(precision, device_type)
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def grad_scaler(precision: str, device_type: str = "cpu") -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for fp16 (gradients underflow in fp16 without loss scaling), else None."""
    check_precision(precision, device_type)
    return torch.amp.GradScaler(device_type) if precision == "fp16" else None


def mixed_precision(precision: str, device_type: str = "cpu"):
    """The ``precision`` argument of :func:`uegan.training.step.train_step` for a precision name."""
    from uegan.training.step import MixedPrecision

    check_precision(precision, device_type)
    return MixedPrecision(device_type, PRECISION_DTYPES[precision], grad_scaler(precision, device_type))


# ---------------------------------------------------------------------------------------------
# memory format


def to_channels_last(*modules: nn.Module) -> None:
    """Parameters and buffers of 4-d shape in NHWC memory format (in place)."""
    for module in modules:
        module.to(memory_format=torch.channels_last)


def channels_last_input(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``x`` in NHWC memory format when ``enabled`` and 4-d; else ``x`` unchanged."""
    if enabled and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# ---------------------------------------------------------------------------------------------
# module swaps that keep parameters and state-dict keys


class ConvFirstUpsample(Upsample):
    """:class:`Upsample` with the 1x1 convolution run before the bilinear upsampling.

    Both are linear and the bilinear weights of every output pixel sum to 1 (align_corners
    included), so ``conv(up(x)) == up(conv(x))``, bias included, up to rounding; the
    convolution then runs on a quarter of the pixels, and the upsampling on half the channels.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=True)


class LocalOnlyGlobalAttention(GlobalAttention):
    """The published GAM without its inert global branch: ``InstanceNorm(W_x * x)``.

    The global branch adds ``W_g g + b``, constant over the image, right before an
    InstanceNorm that subtracts every per-channel mean: the output is the same (spec,
    "Findings"), up to rounding. For inference only: in training, the dead parameters' zero
    gradients become missing gradients, and Adam's weight decay would skip them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_x = self.fuse.weight[:, :self.channels]
        return F.instance_norm(F.conv2d(x, w_x), eps=NORM_EPS)


class OutputScaledDBlock(DBlock):
    """:class:`DBlock` that divides the convolution's *output* by sigma instead of its weight.

    ``conv(x, W / sigma) + b == conv(x, W) / sigma + b``. The published form reads and writes
    the whole weight to normalise it on every call, and its backward makes three more passes
    over it; here the division touches the (small) output map. The power iteration is the same
    (same order, same buffers, in place), and ``W v`` is computed once and shared by the
    iteration's ``u`` update and sigma (the published code computes the same product twice).
    The parameters, buffers and keys stay those of the parametrized convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        weight = conv.parametrizations.weight.original
        norm = conv.parametrizations.weight[0]
        matrix = weight.flatten(1)
        if norm.training:
            with torch.no_grad():
                norm.v.copy_(F.normalize(torch.mv(matrix.t(), norm.u), dim=0, eps=norm.eps))
        v = norm.v.clone(memory_format=torch.contiguous_format)
        product = torch.mv(matrix, v)
        if norm.training:
            with torch.no_grad():
                norm.u.copy_(F.normalize(product, dim=0, eps=norm.eps))
        u = norm.u.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, product)
        out = conv._conv_forward(x, weight, None) / sigma
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return F.leaky_relu(out, LEAKY_SLOPE)


def use_output_scaled_spectral_norm(module: nn.Module) -> int:
    """Every (exact) :class:`DBlock` becomes an :class:`OutputScaledDBlock`."""
    return _swap_class(module, DBlock, OutputScaledDBlock)


def restore_dblocks(module: nn.Module) -> int:
    return _swap_class(module, OutputScaledDBlock, DBlock)


def _swap_class(root: nn.Module, exact_type: type, new_type: type) -> int:
    """Re-class every submodule whose type is exactly ``exact_type`` (parameters, buffers,
    hooks and keys untouched); returns how many."""
    count = 0
    for module in root.modules():
        if type(module) is exact_type:
            module.__class__ = new_type
            count += 1
    return count


def use_conv_first_upsample(module: nn.Module) -> int:
    """Every (exact) :class:`Upsample` in ``module`` becomes a :class:`ConvFirstUpsample`."""
    return _swap_class(module, Upsample, ConvFirstUpsample)


def restore_upsample(module: nn.Module) -> int:
    return _swap_class(module, ConvFirstUpsample, Upsample)


def skip_inert_attention(module: nn.Module) -> int:
    """Every (exact, published) :class:`GlobalAttention` becomes a
    :class:`LocalOnlyGlobalAttention`. Inference only."""
    return _swap_class(module, GlobalAttention, LocalOnlyGlobalAttention)


def restore_attention(module: nn.Module) -> int:
    return _swap_class(module, LocalOnlyGlobalAttention, GlobalAttention)


# ---------------------------------------------------------------------------------------------
# torch.compile


def compile_module(module: nn.Module, *, mode: str | None = None, dynamic: bool | None = False,
                   fullgraph: bool = False, freezing: bool = False, conv_1x1_as_mm: bool = True,
                   cache_dir: str | Path | None = None) -> nn.Module:
    """``module.compile(...)`` in place (the module object, its parameters and keys stay).

    ``dynamic=False``: one graph per input shape (training and the benchmarks use one shape);
    pass ``None`` to let torch switch to a shape-generic graph after the second shape (a folder
    of photos of different sizes). ``freezing``: weights become constants of the graph (for
    inference: the graph must be re-made, i.e. the module re-compiled, if the weights change).
    ``conv_1x1_as_mm``: 1x1 convolutions as matrix products (on CPU an NCHW 1x1 convolution
    takes a slow path, about 4x slower than the same product through BLAS).
    """
    configure_compile_cache(cache_dir)
    options: dict[str, Any] = {"conv_1x1_as_mm": conv_1x1_as_mm}
    if freezing:
        options["freezing"] = True
    if mode is not None:
        # torch.compile takes either a mode or options; the mode's settings go in by hand
        import torch._inductor

        options.update(torch._inductor.list_mode_options(mode, dynamic))
    module.compile(dynamic=dynamic, fullgraph=fullgraph, options=options)
    return module


def is_compiled(module: nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def run_eagerly(enabled: bool = True) -> contextlib.AbstractContextManager:
    """Inside the block compiled modules run their eager code (``torch.compiler.set_stance``):
    for calls on shapes a compiled graph has not seen, such as validation photos of every
    size, which would otherwise each pay a compilation."""
    return torch.compiler.set_stance("force_eager") if enabled else contextlib.nullcontext()


def compile_generator(generator: nn.Module, *, inference: bool = True, mode: str | None = None,
                      dynamic: bool | None = False, cache_dir: str | Path | None = None) -> nn.Module:
    """Compile G in place; with ``inference`` its weights are frozen into the graph."""
    return compile_module(generator, mode=mode, dynamic=dynamic, freezing=inference,
                          cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------
# training


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


# ---------------------------------------------------------------------------------------------
# enhancement


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
        """Every fp32 option that pays on this project's CPU measurements (benchmarks/RESULTS.md)."""
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


__all__ = [
    "AcceleratedGenerator", "ConvFirstUpsample", "InferenceAcceleration", "LocalOnlyGlobalAttention",
    "OutputScaledDBlock", "restore_dblocks", "use_output_scaled_spectral_norm",
    "PRECISIONS", "PRECISION_DTYPES", "TrainingAcceleration", "accelerate_training", "autocast",
    "channels_last_input", "check_precision", "compile_generator", "compile_module",
    "configure_compile_cache", "configure_threads", "default_compile_cache", "grad_scaler",
    "is_compiled", "mixed_precision", "prepare_generator_for_inference", "restore_attention",
    "restore_upsample", "run_eagerly", "skip_inert_attention", "to_channels_last", "use_conv_first_upsample",
]
