"""Time one UEGAN training step (G and D updates, fidelity and identity terms), variants side by side.

    python benchmarks/train_step.py --conv-dim 32 --size 128 --batch 2 --steps 5 --rounds 4 \
        --variants eager,fast,fast+compile,fast+bf16

Each variant is a ``+``-joined list of options of ``uegan.training.acceleration.TrainingAcceleration``
(``eager`` = none: this project's published-order fp32 step):

    compile          torch.compile of G, D and VGG19 (``novgg``: leave VGG19 eager)
    freeze_d         D frozen during the G step (no D weight gradients there)
    fused_adam       torch.optim.Adam(fused=True)
    cfu              conv-first upsampling in G (1x1 conv before the bilinear x2)
    osn              output-scaled spectral norm in D (divide the conv output, not the weight)
    channels_last    NHWC networks and inputs
    bf16, fp16       autocast precision (fp16 with loss scaling)
    max_autotune     compile mode "max-autotune"
    bd               D's three calls of the D step as one call (one power iteration per call)
    bdg              bd, and D's two calls of the G step as one call too
    bg               G(low) and G(high) as one call
    fast             TrainingAcceleration.fast(): freeze_d + fused_adam + cfu + osn + bd (add compile: fast+compile)

Every variant runs in its own process; after ``--warmup`` steps (the first one, which includes
compilation, is reported on its own) the timed steps run in ``--rounds`` interleaved rounds of
``--steps`` steps, each step timed on its own; the figure is the median over all of them.
Memory: on CPU the resident set size high-water mark during the timed steps (sampled), on CUDA
``torch.cuda.max_memory_allocated`` over the timed steps. ``--warm-cache`` also starts a second
process per compiled variant on the same compile cache and reports its first step (the compile
time a later run pays). The last line is ``median_s=<seconds per step>`` of the last variant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

PUBLISHED_STEP_S = 0.71  # published UEGAN code, 2-core CPU, conv_dim 32, 128 px, batch 2 (issue 7)
TOKENS: dict[str, dict[str, Any]] = {
    "compile": {"compile": True}, "novgg": {"compile_vgg": False},
    "freeze_d": {"freeze_d_in_g_step": True}, "fused_adam": {"fused_adam": True},
    "cfu": {"conv_first_upsample": True}, "osn": {"output_scaled_spectral_norm": True},
    "channels_last": {"channels_last": True}, "max_autotune": {"compile_mode": "max-autotune"},
    "bf16": {"precision": "bf16"}, "fp16": {"precision": "fp16"},
    "bd": {"batch_d_calls": True}, "bdg": {"batch_d_calls": True, "batch_d_in_g_step": True},
    "bg": {"batch_g_calls": True},
}


def parse_variant(name: str):
    from uegan.training.acceleration import TrainingAcceleration

    return h.options_from_variant(name, TrainingAcceleration, TOKENS, TrainingAcceleration.fast)


# ---------------------------------------------------------------------------------------------
# worker


class StepWorker:
    def setup(self, variant: str, conv_dim: int, size: int, batch: int, device: str,
              threads: int | None, seed: int, check: bool = True) -> dict[str, Any]:
        """``check`` is accepted for the harness's sake: a step's losses are always reported."""
        import torch

        from uegan.training.acceleration import accelerate_training
        from uegan.runtime import channels_last_input
        from uegan.training.step import mixed_precision
        from uegan.losses import FidelityLoss
        from uegan.models import (Discriminator, DiscriminatorConfig, Generator, GeneratorConfig,
                                  VGG19Features)
        from uegan.models.init import init_orthogonal
        from uegan.training.step import ImagePool, OptimizerSettings, make_optimizers, train_step

        options = parse_variant(variant)
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        torch.manual_seed(seed)
        generator = Generator(GeneratorConfig(conv_dim))
        discriminator = Discriminator(DiscriminatorConfig(conv_dim))
        init_orthogonal(generator)
        init_orthogonal(discriminator)
        fidelity = FidelityLoss(VGG19Features())  # random VGG19 weights: the same arithmetic
        for module in (generator, discriminator, fidelity):
            module.to(self.device)
        accelerate_training(generator, discriminator, fidelity, options)
        opt_g, opt_d = make_optimizers(generator, discriminator, OptimizerSettings(),
                                       **options.optimizer_kwargs())
        precision = mixed_precision(options.precision, self.device.type)
        pool = ImagePool(50, seed=seed)
        step_kwargs = options.step_kwargs()

        # a few distinct batches of smooth random images in [-1, 1]
        def image_batch() -> torch.Tensor:
            coarse = torch.rand(batch, 3, size // 16, size // 16)
            fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                                   align_corners=False)
            x = (fine + 0.05 * torch.randn_like(fine)).clamp(0, 1) * 2 - 1
            return channels_last_input(x.to(self.device), options.channels_last)

        self.batches = [(image_batch(), image_batch()) for _ in range(4)]
        self.index = 0

        def step() -> None:
            low, high = self.batches[self.index % len(self.batches)]
            self.index += 1
            self.last = train_step(generator, discriminator, fidelity, pool, opt_g, opt_d, low, high,
                                   "l1", precision=precision, **step_kwargs)

        self.step = step
        self.sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        self.torch = torch
        return {"threads": torch.get_num_threads(), "options": repr(options)}

    def warmup(self, count: int) -> dict[str, Any]:
        first = h.timed(self.step, self.sync)
        rest = [h.timed(self.step, self.sync) for _ in range(max(0, count - 1))]
        losses = self.last.as_floats()
        return {"first_s": first, "rest": rest, "losses": losses}

    def run(self, count: int) -> dict[str, Any]:
        return h.timed_calls(self.step, self.sync, self.device, count)


def worker_main() -> None:
    worker = StepWorker()
    h.serve({"setup": worker.setup, "warmup": worker.warmup, "run": worker.run})


# ---------------------------------------------------------------------------------------------
# orchestrator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    h.add_common_arguments(parser, PUBLISHED_STEP_S)
    args = parser.parse_args()

    print(f"# train step: conv_dim {args.conv_dim}, {args.size} px, batch {args.batch}, device "
          f"{args.device}, {h.describe_machine(args.device)}")
    m = h.measure_variants(__file__, args, dict(conv_dim=args.conv_dim, size=args.size, batch=args.batch),
                           args.steps, lambda v: parse_variant(v).compile,
                           lambda reply: f"losses {reply['losses']}")
    h.print_table(m, "step", args.reference_s, "issue 7; conv_dim 32, 128 px, batch 2",
                  extra={"max RSS": lambda variant: h.fmt_mib(m.memory[variant]["max_rss"])})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
    else:
        main()
