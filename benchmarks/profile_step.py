"""Where the time of a training step goes: its parts timed on their own, with their arithmetic.

    python benchmarks/profile_step.py --conv-dim 32 --size 128 --batch 2 [--compile] [--precision bf16]

The parts of one step in the published order (uegan.training.step.train_step):

    G(low) fwd+bwd    the generator on the low-quality batch, forward and backward (x1 per step)
    G(high) fwd+bwd   the same on the high-quality batch (identity term; the same cost)
    D step            D(high), D(pooled), D(low) in train mode, backward into D's weights
    D in G step       D(high) and D(fake) with D frozen (``freeze_d``), backward to the input
    fidelity          VGG19 to relu5_1 on the generated batch and on the low-quality batch (no
                      graph), backward to the generated image
    Adam G, Adam D    the optimiser steps

Each part is timed on its own (median of ``--repeats``), next to its floating-point operations
(counted by ``torch.utils.flop_counter``) and the rate achieved; the sum is compared with a
whole step timed the same way. On this project's 2-core CPU the fp32 peak is about
2 x 32 FLOP/cycle x clock (AVX-512 on Zen 4 runs as 2 x 256 bit): the rates show how close each
part already is to it, so what a faster implementation can still win.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="G, D and VGG19 compiled")
    parser.add_argument("--cfu", action="store_true", help="conv-first upsampling in G")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from uegan.training.acceleration import TrainingAcceleration, accelerate_training
    from uegan.runtime import autocast
    from uegan.losses import FidelityLoss, identity_loss, rahinge_d_loss, rahinge_g_loss
    from uegan.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, VGG19Features
    from uegan.models.init import init_orthogonal
    from uegan.training.step import (ImagePool, OptimizerSettings, frozen_parameters, make_optimizers,
                                     to_unit_range, train_step)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator, discriminator = Generator(GeneratorConfig(args.conv_dim)), Discriminator(DiscriminatorConfig(args.conv_dim))
    init_orthogonal(generator)
    init_orthogonal(discriminator)
    fidelity = FidelityLoss(VGG19Features())
    for module in (generator, discriminator, fidelity):
        module.to(device)
    options = TrainingAcceleration(compile=args.compile, conv_first_upsample=args.cfu,
                                   freeze_d_in_g_step=True, precision=args.precision)
    accelerate_training(generator, discriminator, fidelity, options)
    opt_g, opt_d = make_optimizers(generator, discriminator, OptimizerSettings())
    low = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1
    high = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cast = lambda: autocast(args.precision, device.type)  # noqa: E731

    def g_fwd_bwd(x):
        def run():
            with cast():
                y = generator(x)
                loss = identity_loss(y, x)
            loss.backward()
        return run

    def d_step():
        with cast():
            real = discriminator(high)
            pooled = fake_leaf.detach()
            loss = rahinge_d_loss(real, discriminator(pooled)) + rahinge_d_loss(real, discriminator(low))
        loss.backward()

    fake_leaf = (torch.rand_like(low) * 2 - 1).requires_grad_()

    def d_in_g_step():
        with cast(), frozen_parameters(discriminator) as d:
            loss = rahinge_g_loss(d(high), d(fake_leaf))
        loss.backward()

    def vgg_fake():
        with cast():
            loss = fidelity(to_unit_range(fake_leaf), to_unit_range(low).detach())
        loss.backward()

    def whole_step():
        train_step(generator, discriminator, fidelity, pool, opt_g, opt_d, low, high, "l1",
                   freeze_d_in_g_step=True)

    pool = ImagePool(50)
    parts = [("G(low) fwd+bwd", g_fwd_bwd(low)), ("G(high) fwd+bwd", g_fwd_bwd(high)),
             ("D step (3 fwd + bwd)", d_step), ("D in G step (2 fwd + bwd)", d_in_g_step),
             ("fidelity (2 VGG fwd + bwd)", vgg_fake),
             ("Adam G", opt_g.step), ("Adam D", opt_d.step)]
    # gradients exist for the optimiser steps
    for _, fn in parts[:4]:
        fn()
    print(f"# step parts: conv_dim {args.conv_dim}, {args.size} px, batch {args.batch}, "
          f"{args.precision}{', compiled' if args.compile else ', eager'}, {torch.get_num_threads()} threads, "
          f"{h.describe_machine(args.device)}; load average {h.load_average()}")
    print(f"  {'part':<28} {'median s':>9} {'cpu s':>7} {'GFLOP':>7} {'GFLOP/s':>8} {'share':>6}")
    rows = []
    for name, fn in parts:
        counter = FlopCounterMode(display=False)
        if name.startswith("Adam"):
            flops = 0
        else:
            with counter:
                fn()
            flops = counter.get_total_flops()
        for _ in range(2):
            fn()
        walls, cpus = [], []
        for _ in range(args.repeats):
            walls.append(h.timed(fn, sync, cpus))
        rows.append((name, statistics.median(walls), statistics.median(cpus), flops))
    total = sum(row[1] for row in rows)
    for name, wall, cpu, flops in rows:
        rate = f"{flops / wall / 1e9:8.1f}" if flops else f"{'-':>8}"
        print(f"  {name:<28} {wall:>9.4f} {cpu:>7.3f} {flops / 1e9:>7.2f} {rate} {wall / total:>6.1%}")
    step_flops = sum(row[3] for row in rows)
    for _ in range(2):
        whole_step()
    walls, cpus = [], []
    for _ in range(args.repeats):
        walls.append(h.timed(whole_step, sync, cpus))
    step = statistics.median(walls)
    print(f"  {'sum of parts':<28} {total:>9.4f} {'':>7} {step_flops / 1e9:>7.2f} {step_flops / total / 1e9:>8.1f}")
    print(f"  {'whole step (freeze_d)':<28} {step:>9.4f} {statistics.median(cpus):>7.3f} "
          f"{'':>7} {step_flops / step / 1e9:>8.1f}")
    print(f"# load average after: {h.load_average()}")
    print(f"median_s={step:.4f}")


if __name__ == "__main__":
    main()
