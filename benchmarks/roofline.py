"""The arithmetic floor: how fast a training step and a 512 x 512 enhancement could be on this
machine, from their floating-point operations and the machine's measured matrix-product rate.

    python benchmarks/roofline.py [--threads N] [--conv-dim 32] [--size 128] [--batch 2]

1. Floating-point operations (``torch.utils.flop_counter``, convolutions and matrix products;
   the elementwise work is not counted) of one training step at the given settings, as this
   project runs it (``freeze_d``: no D weight gradients in the G step; with them the step only
   costs more) and of one generator forward pass on a ``--enhance-size`` image, with and without
   the exact FLOP-saving options (conv-first upsampling, the inert GAM branch skipped).
2. The machine's rate on a large square matrix product and on the generator's most efficient
   convolution (the best cases for its arithmetic units), in fp32 and bf16, with the torch threads
   in use: median and best of ``--repeats``.
3. floor = FLOP / the better of the two best rates: no implementation of the same arithmetic in that precision can be faster
   than that on this machine, compared with the issue's targets (2x faster than 0.71 s per step,
   2.5x faster than 0.54 s per image).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

PUBLISHED_STEP_S = 0.71
PUBLISHED_IMAGE_S = 0.54
STEP_TARGET = 2.0
IMAGE_TARGET = 2.5


def gflops(times: list[float], flops: int) -> tuple[float, float]:
    """(median, best) GFLOP/s of calls of ``flops`` operations that took ``times``."""
    return flops / statistics.median(times) / 1e9, flops / min(times) / 1e9


def gemm_rate(torch, dtype, n: int, repeats: int) -> tuple[float, float]:
    """Median and best GFLOP/s of an n x n x n matrix product in ``dtype``."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return gflops(h.repeat_times(lambda: a @ b, repeats, warmup=3), 2 * n ** 3)


def conv_rate(torch, dtype, repeats: int) -> tuple[float, float]:
    """Median and best GFLOP/s of the generator's most efficient convolution shape (dec1 at
    512 x 512: 3x3, 512 -> 256 channels on 64 x 64), in ``dtype``."""
    x = torch.randn(1, 512, 66, 66).to(dtype)
    w = torch.randn(256, 512, 3, 3).to(dtype)
    conv = torch.nn.functional.conv2d
    with torch.inference_mode():
        times = h.repeat_times(lambda: conv(x, w), repeats, warmup=3)
    return gflops(times, 2 * 64 * 64 * 256 * 512 * 9)


def step_flops(torch, conv_dim: int, size: int, batch: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from uegan.losses import FidelityLoss
    from uegan.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, VGG19Features
    from uegan.models.init import init_orthogonal
    from uegan.training.step import ImagePool, OptimizerSettings, make_optimizers, train_step

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(conv_dim))
    discriminator = Discriminator(DiscriminatorConfig(conv_dim))
    init_orthogonal(generator)
    init_orthogonal(discriminator)
    fidelity = FidelityLoss(VGG19Features())
    opt_g, opt_d = make_optimizers(generator, discriminator, OptimizerSettings())
    low = torch.rand(batch, 3, size, size) * 2 - 1
    high = torch.rand(batch, 3, size, size) * 2 - 1
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(generator, discriminator, fidelity, ImagePool(50), opt_g, opt_d, low, high, "l1",
                   freeze_d_in_g_step=True)
    return counter.get_total_flops()


def forward_flops(torch, conv_dim: int, size: int, exact_savings: bool) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from uegan.inference import InferenceAcceleration, prepare_generator_for_inference
    from uegan.models import Generator, GeneratorConfig

    options = InferenceAcceleration(conv_first_upsample=exact_savings, skip_inert_gam=exact_savings)
    generator = prepare_generator_for_inference(Generator(GeneratorConfig(conv_dim)), options)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        generator(torch.rand(1, 3, size, size) * 2 - 1)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="training crop side")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--enhance-size", type=int, default=512)
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    torch = h.import_torch(args.threads, "roofline")
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gemm = gemm_rate(torch, dtype, args.gemm_size, args.repeats)
        conv = conv_rate(torch, dtype, args.repeats)
        print(f"# {name}: {args.gemm_size}^3 matrix product median {gemm[0]:.1f} GFLOP/s (best "
              f"{gemm[1]:.1f}); 3x3 convolution 512 -> 256 on 64 x 64 median {conv[0]:.1f} (best "
              f"{conv[1]:.1f})")
        rates[name] = max(gemm[1], conv[1])

    work = [
        (f"training step (conv_dim {args.conv_dim}, {args.size} px, batch {args.batch})",
         step_flops(torch, args.conv_dim, args.size, args.batch), PUBLISHED_STEP_S / STEP_TARGET),
        (f"enhance {args.enhance_size}x{args.enhance_size} (G forward)",
         forward_flops(torch, args.conv_dim, args.enhance_size, False), PUBLISHED_IMAGE_S / IMAGE_TARGET),
        (f"enhance {args.enhance_size}x{args.enhance_size}, cfu + skip_gam",
         forward_flops(torch, args.conv_dim, args.enhance_size, True), PUBLISHED_IMAGE_S / IMAGE_TARGET),
    ]
    print(f"  {'work':<52} {'GFLOP':>7} {'target s':>8} {'needs GFLOP/s':>13} "
          f"{'floor fp32 s':>12} {'floor bf16 s':>12}")
    for name, flops, target in work:
        floors = [flops / (rates[p] * 1e9) for p in ("fp32", "bf16")]
        print(f"  {name:<52} {flops / 1e9:>7.2f} {target:>8.3f} {flops / target / 1e9:>13.1f} "
              f"{floors[0]:>12.3f} {floors[1]:>12.3f}")
    print("# floor = GFLOP / the best rate above (elementwise work, memory traffic and the "
          "lower rate of narrow or 3-channel convolutions come on top)")
    print(f"# load average after: {h.load_average()}")


if __name__ == "__main__":
    main()
