"""Time one UEGAN training step (G and D updates, fidelity and identity terms), variants side by side.

    python benchmarks/train_step.py --conv-dim 32 --size 128 --batch 2 --steps 5 --rounds 4 \
        --variants eager,freeze_d,compile,fast

Each variant is a ``+``-joined list of options of ``uegan.acceleration.TrainingAcceleration``
(``eager`` = none: this project's published-order fp32 step):

    compile          torch.compile of G, D and VGG19 (``novgg``: leave VGG19 eager)
    freeze_d         D frozen during the G step (no D weight gradients there)
    fused_adam       torch.optim.Adam(fused=True)
    cfu              conv-first upsampling in G (1x1 conv before the bilinear x2)
    osn              output-scaled spectral norm in D (divide the conv output, not the weight)
    channels_last    NHWC networks and inputs
    bf16, fp16       autocast precision (fp16 with loss scaling)
    max_autotune     compile mode "max-autotune"
    fast             TrainingAcceleration.fast(): compile + freeze_d + fused_adam + cfu + osn

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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

PUBLISHED_STEP_S = 0.71  # published UEGAN code, 2-core CPU, conv_dim 32, 128 px, batch 2 (issue 7)
TOKENS = {"compile", "novgg", "freeze_d", "fused_adam", "cfu", "osn", "channels_last", "bf16", "fp16",
          "max_autotune", "fast", "eager"}


def parse_variant(name: str):
    from uegan.acceleration import TrainingAcceleration

    tokens = name.split("+")
    unknown = set(tokens) - TOKENS
    if unknown:
        raise SystemExit(f"unknown option(s) {', '.join(sorted(unknown))} in variant {name!r}; "
                         f"known: {', '.join(sorted(TOKENS))}")
    values: dict[str, Any] = {}
    if "fast" in tokens:
        values.update(vars(TrainingAcceleration.fast()))
    if "compile" in tokens:
        values["compile"] = True
    if "novgg" in tokens:
        values["compile_vgg"] = False
    if "freeze_d" in tokens:
        values["freeze_d_in_g_step"] = True
    if "fused_adam" in tokens:
        values["fused_adam"] = True
    if "cfu" in tokens:
        values["conv_first_upsample"] = True
    if "osn" in tokens:
        values["output_scaled_spectral_norm"] = True
    if "channels_last" in tokens:
        values["channels_last"] = True
    if "max_autotune" in tokens:
        values["compile_mode"] = "max-autotune"
    for precision in ("bf16", "fp16"):
        if precision in tokens:
            values["precision"] = precision
    return TrainingAcceleration(**values)


# ---------------------------------------------------------------------------------------------
# worker


class StepWorker:
    def setup(self, variant: str, conv_dim: int, size: int, batch: int, device: str,
              threads: int | None, seed: int) -> dict[str, Any]:
        import torch

        from uegan.acceleration import (accelerate_training, channels_last_input, mixed_precision)
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
        torch = self.torch
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        cpu_times: list[float] = []
        with h.MemorySampler() as memory:
            times = [h.timed(self.step, self.sync, cpu_times) for _ in range(count)]
        peak = (torch.cuda.max_memory_allocated() if self.device.type == "cuda" else memory.peak)
        return {"times": times, "cpu_times": cpu_times, "peak_bytes": peak,
                "max_rss": h.max_rss_bytes()}


def worker_main() -> None:
    worker = StepWorker()
    h.serve({"setup": worker.setup, "warmup": worker.warmup, "run": worker.run})


# ---------------------------------------------------------------------------------------------
# orchestrator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (the first is compile)")
    parser.add_argument("--variants", default="eager,fast")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="add this precision to every variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-cache", default=None,
                        help="inductor cache folder (default: a fresh temporary one: cold compile)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="also measure the first step of a second process on the same cache")
    parser.add_argument("--reference-s", type=float, default=PUBLISHED_STEP_S,
                        help="published figure to compare with (only meaningful at the default settings)")
    args = parser.parse_args()

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.precision and args.precision != "fp32":
        variants = [v if args.precision in v.split("+") else f"{v}+{args.precision}" for v in variants]
    for variant in variants:
        parse_variant(variant)
    cache = Path(args.compile_cache) if args.compile_cache else Path(tempfile.mkdtemp(prefix="uegan-bench-cache-"))
    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache)}
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    print(f"# train step: conv_dim {args.conv_dim}, {args.size} px, batch {args.batch}, device "
          f"{args.device}, {h.describe_machine(args.device)}")
    print(f"# load average before: {h.load_average()}; compile cache {cache}")
    setup = dict(conv_dim=args.conv_dim, size=args.size, batch=args.batch, device=args.device,
                 threads=args.threads, seed=args.seed)
    workers: dict[str, h.Worker] = {}
    first: dict[str, float] = {}
    warm_first: dict[str, float] = {}
    try:
        for variant in variants:
            worker = h.Worker(__file__, [], env)
            info = worker.request(op="setup", variant=variant, **setup)
            started = time.perf_counter()
            reply = worker.request(op="warmup", count=args.warmup)
            first[variant] = reply["first_s"]
            log(f"{variant}: set up ({info['threads']} threads), first step {reply['first_s']:.2f} s, "
                f"warm-up {time.perf_counter() - started:.1f} s, losses {reply['losses']}")
            workers[variant] = worker
        times, cpu, memory = h.run_rounds(workers, args.rounds, args.steps, log)
    finally:
        for worker in workers.values():
            worker.close()
    if args.warm_cache:
        for variant in variants:
            if parse_variant(variant).compile:
                worker = h.Worker(__file__, [], env)
                try:
                    worker.request(op="setup", variant=variant, **setup)
                    warm_first[variant] = worker.request(op="warmup", count=1)["first_s"]
                finally:
                    worker.close()

    print(f"# load average after: {h.load_average()}")
    base = h.summary(times[variants[0]])["median"]
    print(f"# {'variant':<36} {'median s/step':>13} {'q1-q3':>15} {'best':>7} {'cpu s/step':>10} {'vs ' + variants[0]:>12} "
          f"{'vs published':>12} {'first step s':>12} {'warm-cache 1st':>14} {'peak memory':>12} "
          f"{'max RSS':>9}")
    for variant in variants:
        stats = h.summary(times[variant])
        warm = f"{warm_first[variant]:.2f}" if variant in warm_first else "-"
        print(f"  {variant:<36} {stats['median']:>13.4f} {stats['q1']:>7.3f}-{stats['q3']:<7.3f} "
              f"{stats['min']:>7.3f} "
              f"{h.summary(cpu[variant])['median']:>10.3f} "
              f"{base / stats['median']:>11.2f}x {args.reference_s / stats['median']:>11.2f}x "
              f"{first[variant]:>12.2f} {warm:>14} {h.fmt_mib(memory[variant]['peak_bytes']):>12} "
              f"{h.fmt_mib(memory[variant]['max_rss']):>9}")
    print(f"# published reference: {args.reference_s} s/step (issue 7; conv_dim 32, 128 px, batch 2); "
          f"'vs' columns are speed-ups (higher is faster); n = {args.rounds * args.steps} steps each")
    if not args.compile_cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"median_s={h.summary(times[variants[-1]])['median']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
    else:
        main()
