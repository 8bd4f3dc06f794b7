"""Runtime options shared by every command: the device, threads, the torch.compile cache,
precision (autocast), memory format and compilation.

This module owns them: one :func:`select_device` (``auto``: CUDA, then MPS, then CPU), one
validation of a device name, a thread count and a precision name, one table from precision
names to dtypes (:data:`PRECISION_DTYPES`). Each check raises :class:`~uegan.errors.UserError`
with one line naming the valid choices, so every command reports a bad value the same way.
The speed-ups built on these live next to what they speed up: exact layer rewrites in
:mod:`uegan.models.fast`, training-step options in :mod:`uegan.training.step`, enhancement
options in :mod:`uegan.inference`. Figures: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uegan.errors import UserError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16,
                                                  "fp16": torch.float16}
COMPILE_CACHE_ENV = "UEGAN_COMPILE_CACHE"
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_TYPES = ("cpu", "cuda", "mps")


class OptionError(UserError, ValueError):
    """A bad runtime option (device, threads, precision): a UserError, so the command line
    reports it in one line; also a ValueError, as library callers expect of a bad value."""


# ---------------------------------------------------------------------------------------------
# device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def parse_device(name: str) -> torch.device | None:
    """The device ``name`` stands for (``None`` for ``auto``), without asking the hardware.

    A UserError (one line, the valid choices) for anything else: checked when a configuration
    is read, before any work starts.
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        return None
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in DEVICE_TYPES or (device.type != "cuda"
                                                              and device.index not in (None, 0)):
        raise OptionError(f"device {name!r} is not a device name: choose {DEVICE_CHOICES}")
    return device


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device to run on. ``auto``: CUDA (the ``local_rank``-th GPU, for one process per
    GPU), then MPS, then the CPU. A named device must exist on this machine; a UserError (one
    line, the valid choices) otherwise."""
    device = parse_device(name)
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r}: CUDA is not available on this machine (choose "
                            f"{DEVICE_CHOICES})")
        count = torch.cuda.device_count()
        if device.index is None:
            return torch.device("cuda", local_rank % count)
        if device.index >= count:
            raise OptionError(f"device {name!r}: this machine has {count} CUDA device(s), "
                            f"cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not _mps_available():
        raise OptionError(f"device {name!r}: MPS is not available on this machine (choose "
                        f"{DEVICE_CHOICES})")
    return device


# ---------------------------------------------------------------------------------------------
# threads, compile cache


def check_threads(threads: int | None) -> None:
    """A UserError unless ``threads`` is None (torch's default) or at least 1."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise OptionError(f"threads must be a whole number of at least 1 (got {threads!r})")


def configure_threads(threads: int | None) -> int:
    """``torch.set_num_threads(threads)`` when given; returns the number in use."""
    check_threads(threads)
    if threads is not None:
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
    """A UserError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first processor in ``cpuinfo`` (Linux); empty elsewhere."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def bf16_is_native(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` computes in bf16 in hardware: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX (elsewhere bf16 is emulated, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        return any(flag in flags for flag in BF16_CPU_FLAGS)
    return False


def inference_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`bf16_is_native`, else ``fp32``; other names unchanged
    (checked)."""
    if precision == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    check_precision(precision, device.type)
    return precision


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None: full precision)."""
    check_precision(precision)
    return PRECISION_DTYPES[precision]


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``bf16`` / ``fp16``; a no-op context for ``fp32``."""
    dtype = precision_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def grad_scaler(precision: str, device_type: str = "cpu") -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for fp16 (gradients underflow in fp16 without loss scaling), else None."""
    check_precision(precision, device_type)
    return torch.amp.GradScaler(device_type) if precision == "fp16" else None


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
    takes a slower path than the same product through BLAS; benchmarks/RESULTS.md).
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
