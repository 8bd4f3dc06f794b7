"""Benchmark: PSNR + SSIM (published protocol) over many 8-bit 512x512 image pairs on this machine.

Compares, in the same run, this package's torch implementation (per image from numpy arrays, as
`uegan evaluate` calls it; and batched tensors, as validation during training can) with the
scikit-image reference (if installed). Images come from a small pool of distinct random pairs
cycled COUNT times (the arithmetic does not depend on the content; PNG decoding is not timed).
Prints a table of medians over REPEATS (taken round-robin over the variants) and, as its last line, `median_s=<seconds>`: the median
time of the torch per-image path for all COUNT pairs.

    .venv/bin/python benchmarks/metrics.py [--count 500] [--size 512] [--repeats 3] [--threads N] [--gaussian]
"""

from __future__ import annotations

import argparse
import statistics
import time
import numpy as np
import torch

from uegan import metrics


def make_pool(pool: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(pool):
        base = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.float64)
        base = np.kron(base, np.ones((8, 8, 1)))
        a = base.astype(np.uint8)
        b = np.clip(base * 0.9 + 10 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        pairs.append((a, b))
    return pairs


def torch_per_image(pairs, count, protocol):
    total = 0.0
    for i in range(count):
        a, b = pairs[i % len(pairs)]
        total += metrics.psnr(a, b) + metrics.ssim(a, b, protocol)
    return total


def to_chw_pool(pairs):
    """Contiguous 3 x H x W tensors, as a data loader would hand them over (not timed)."""
    return [(torch.from_numpy(a).permute(2, 0, 1).contiguous(), torch.from_numpy(b).permute(2, 0, 1).contiguous())
            for a, b in pairs]


def torch_batched(chw, count, protocol, batch=16):
    total = 0.0
    for start in range(0, count, batch):
        idx = [i % len(chw) for i in range(start, min(count, start + batch))]
        pred = torch.stack([chw[i][0] for i in idx])
        target = torch.stack([chw[i][1] for i in idx])
        total += float(metrics.psnr_batch(pred, target).sum() + metrics.ssim_batch(pred, target, protocol).sum())
    return total


def skimage_reference(pairs, count, protocol):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    extra = {} if protocol == "published" else {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    total = 0.0
    for i in range(count):
        a, b = pairs[i % len(pairs)]
        a, b = a[4:-4, 4:-4], b[4:-4, 4:-4]
        total += peak_signal_noise_ratio(b, a, data_range=255)
        total += structural_similarity(a, b, channel_axis=-1, data_range=255, **extra)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool", type=int, default=16, help="distinct random pairs, cycled")
    parser.add_argument("--no-skimage", action="store_true")
    parser.add_argument("--gaussian", action="store_true", help="also time the Gaussian SSIM")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    pairs = make_pool(args.pool, args.size)
    chw = to_chw_pool(pairs)
    print(f"{args.count} pairs of {args.size}x{args.size}x3 uint8, PSNR + SSIM, medians of {args.repeats} "
          f"repeats; torch {torch.__version__}, {torch.get_num_threads()} threads")
    protocols = ["published"] + (["gaussian"] if args.gaussian else [])
    print(f"{'ssim':10} {'variant':36} {'median s':>9} {'ms/pair':>8}  all repeats (s)", flush=True)
    main_median = None
    for protocol in protocols:
        variants = [("torch, per image (uegan evaluate)", lambda p=protocol: torch_per_image(pairs, args.count, p)),
                    ("torch, batches of 16 tensors", lambda p=protocol: torch_batched(chw, args.count, p))]
        if not args.no_skimage:
            try:
                import skimage  # noqa: F401
                variants.append(("scikit-image reference", lambda p=protocol: skimage_reference(pairs, args.count, p)))
            except ImportError:
                print("scikit-image not installed: reference skipped")
        metrics.ssim(pairs[0][0], pairs[0][1], protocol)  # warm-up: first-call costs do not count
        # Repeats go round-robin over the variants, so that a change in the machine's load
        # during the run affects every variant alike.
        times: dict[str, list[float]] = {name: [] for name, _ in variants}
        values = []
        for _ in range(args.repeats):
            for name, fn in variants:
                start = time.perf_counter()
                values.append(fn())
                times[name].append(time.perf_counter() - start)
        for name, _ in variants:
            median = statistics.median(times[name])
            print(f"{protocol:10} {name:36} {median:9.2f} {1000 * median / args.count:8.1f}  "
                  + " ".join(f"{t:.2f}" for t in times[name]), flush=True)
            if protocol == "published" and name.startswith("torch, per image"):
                main_median = median
        print(f"{'':10} (sum of all {protocol} figures agrees across variants within "
              f"{max(values) - min(values):.3g})", flush=True)
    print(f"median_s={main_median:.3f}")


if __name__ == "__main__":
    main()
