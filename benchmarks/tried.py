"""The measurements behind "What was tried" in benchmarks/RESULTS.md ("Performance").

    python benchmarks/tried.py ops            # torch.profiler: where G's and D's time goes, per op and shape
    python benchmarks/tried.py batch          # G forward + backward against the batch size
    python benchmarks/tried.py space-to-depth # the 1- and 3-channel 7x7 convolutions, rewritten

``ops``: the heaviest operators (self time, grouped by input shapes) of G forward + backward at
128 x 128, batch 2 (conv-first upsampling), of D forward + backward (output-scaled spectral norm),
and of G's forward on one 512 x 512 image (conv-first upsampling, inert GAM branch skipped).

``batch``: whether running G(low) and G(high) as one batch would help: G forward + backward at
128 x 128 for batch 2, 4, 10, 20 (median of repeats).

``space-to-depth``: a stride-1 convolution with few output channels, computed on
``pixel_unshuffle(x, 2)`` with a 4x4 (from 7x7) or 3x3 (from 5x5) kernel and 4x the output
channels, then ``pixel_shuffle``: the same sums in another order (the kernel is a gather of the
original weight, so gradients reach it unchanged). oneDNN computes output channels in blocks of
16, so 3 or 1 output channels waste most of each block; 12 or 4 waste less. Printed: the largest
difference to ``conv2d`` (output, and input / weight gradients relative to their largest value)
and the times of both, forward alone and forward + backward, at the shapes of G's last
convolution and of D's five score heads. Not used by the project (the gain is small; see
RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(h.repeat_times(fn, repeats))


def profile_ops(repeats: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from uegan.inference import InferenceAcceleration, prepare_generator_for_inference
    from uegan.models.fast import use_conv_first_upsample, use_output_scaled_spectral_norm
    from uegan.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(32))
    use_conv_first_upsample(generator)
    discriminator = Discriminator(DiscriminatorConfig(32))
    use_output_scaled_spectral_norm(discriminator)
    x128 = torch.rand(2, 3, 128, 128) * 2 - 1
    inference = prepare_generator_for_inference(
        Generator(GeneratorConfig(32)), InferenceAcceleration(conv_first_upsample=True, skip_inert_gam=True))
    x512 = torch.rand(1, 3, 512, 512) * 2 - 1

    def g_step() -> None:
        generator(x128).mean().backward()

    def d_step() -> None:
        sum(score.mean() for score in discriminator(x128)).backward()

    def g_512() -> None:
        with torch.inference_mode():
            inference(x512)

    for name, fn in (("G forward + backward, 128 x 128, batch 2", g_step),
                     ("D forward + backward, 128 x 128, batch 2", d_step),
                     ("G forward, 512 x 512", g_512)):
        for _ in range(2):
            fn()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(repeats):
                fn()
        print(f"# {name}: {repeats} calls")
        print(prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=32,
            max_shapes_column_width=70))


def batch_scaling(repeats: int) -> None:
    import torch

    from uegan.models.fast import use_conv_first_upsample
    from uegan.models import Generator, GeneratorConfig

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(32))
    use_conv_first_upsample(generator)
    print(f"  {'batch':>5} {'median s':>9} {'s per image':>11}")
    for batch in (2, 4, 10, 20):
        x = torch.rand(batch, 3, 128, 128) * 2 - 1
        seconds = median_time(lambda: generator(x).mean().backward(), repeats)
        print(f"  {batch:>5} {seconds:>9.4f} {seconds / batch:>11.4f}")


def space_to_depth_index(out_channels: int, in_channels: int, k: int):
    """Index into ``[weight.flatten(), 0]`` giving the 2x2-phase kernel of a k x k kernel."""
    import torch

    kp = k // 2 + 1
    shape = (out_channels, 2, 2, in_channels, 2, 2, kp, kp)
    o, a, b, c, p, q, s, t = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    u, v = 2 * s + p - a, 2 * t + q - b
    valid = (u >= 0) & (u < k) & (v >= 0) & (v < k)
    flat = ((o * in_channels + c) * k + u.clamp(0, k - 1)) * k + v.clamp(0, k - 1)
    index = torch.where(valid, flat, torch.full_like(flat, out_channels * in_channels * k * k))
    return index.reshape(out_channels * 4, in_channels * 4, kp, kp)


def space_to_depth_conv(padded, weight, bias, index):
    """``conv2d(padded, weight, bias)`` (stride 1, no padding, even output sides) on 2x2 phases."""
    import torch
    import torch.nn.functional as F

    k = weight.shape[-1]
    height, width = padded.shape[-2] - k + 1, padded.shape[-1] - k + 1
    kp = k // 2 + 1
    need_h, need_w = 2 * (height // 2 + kp - 1), 2 * (width // 2 + kp - 1)
    padded = F.pad(padded, (0, max(0, need_w - padded.shape[-1]), 0, max(0, need_h - padded.shape[-2])))
    phases = F.pixel_unshuffle(padded[..., :need_h, :need_w], 2)
    kernel = torch.cat([weight.flatten(), weight.new_zeros(1)])[index]
    out = F.conv2d(phases, kernel, bias.repeat_interleave(4) if bias is not None else None)
    return F.pixel_shuffle(out, 2)


def space_to_depth(repeats: int) -> None:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    shapes = [("G to_rgb, 512 px", 1, 32, 3, 7, 512), ("G to_rgb, 128 px", 2, 32, 3, 7, 128),
              ("D head 1", 2, 32, 1, 7, 64), ("D head 2", 2, 64, 1, 7, 32),
              ("D head 3", 2, 128, 1, 7, 16), ("D head 4", 2, 256, 1, 5, 8),
              ("D head 5", 2, 512, 1, 5, 4)]
    print(f"  {'shape':<18} {'batch':>5} {'channels':>9} {'k':>2} {'side':>5} {'max|out diff|':>13} "
          f"{'grad diff':>9} {'fwd ms':>7} {'-> s2d':>7} {'fwd+bwd ms':>10} {'-> s2d':>7}")
    for name, batch, cin, cout, k, side in shapes:
        x = torch.randn(batch, cin, side, side)
        weight = torch.randn(cout, cin, k, k) * 0.05
        bias = torch.randn(cout) if cout == 3 else None
        pad = k // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        index = space_to_depth_index(cout, cin, k)
        out_diff = (F.conv2d(padded, weight, bias) - space_to_depth_conv(padded, weight, bias, index)).abs().max().item()
        with torch.inference_mode():
            forward = median_time(lambda: F.conv2d(padded, weight, bias), repeats)
            forward_s2d = median_time(lambda: space_to_depth_conv(padded, weight, bias, index), repeats)
        xg, wg = padded.clone().requires_grad_(), weight.clone().requires_grad_()

        def plain() -> None:
            F.conv2d(xg, wg, bias).sum().backward()

        def rewritten() -> None:
            space_to_depth_conv(xg, wg, bias, index).sum().backward()

        grads = []
        for fn in (plain, rewritten):
            xg.grad = wg.grad = None
            fn()
            grads.append((xg.grad.clone(), wg.grad.clone()))
        grad_diff = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(*grads))
        both = median_time(plain, repeats)
        both_s2d = median_time(rewritten, repeats)
        print(f"  {name:<18} {batch:>5} {f'{cin}->{cout}':>9} {k:>2} {side:>5} {out_diff:>13.1e} "
              f"{grad_diff:>9.1e} {forward * 1e3:>7.2f} {forward_s2d * 1e3:>7.2f} {both * 1e3:>10.2f} "
              f"{both_s2d * 1e3:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("ops", "batch", "space-to-depth"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    h.import_torch(args.threads, args.what)
    {"ops": profile_ops, "batch": batch_scaling, "space-to-depth": space_to_depth}[args.what](
        3 if args.what == "ops" else args.repeats)
    print(f"# load average after: {h.load_average()}")


if __name__ == "__main__":
    main()
