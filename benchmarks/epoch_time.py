"""Time of one FiveK training epoch at the published settings, and whether data loading keeps up.

    python benchmarks/epoch_time.py --device cuda --variant fast --size 256 --batch 10 --images 2250
    python benchmarks/epoch_time.py --loader-only --workers 0,2,4,8

Compute: ``--images / --batch`` steps (FiveK: 2250 low-quality images per epoch, batch 10: 225
steps) of the training step on synthetic batches that are already on the device, after
``--warmup`` steps (compilation); prints the epoch time and ``epoch_s=<seconds>``.
``--steps N`` times N steps only and scales them up to the epoch (an estimate, marked as such).

Data loading (``--loader-only``): the project's loader (``uegan.training.data.UnpairedBatches``:
decode, random 512 crop, resize to 256, flips, for the low and the high set) over the FiveK
sample photos of ../shared/data/fivek-sample (repeated to ``--images`` entries; the files stay
in the page cache, as the real set does on a machine with enough memory after the first epoch),
with each number of ``--workers``: batches per second, and the split of one image's time into
decoding and augmentation (what a cache of decoded images would save).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
from train_step import StepWorker, parse_variant  # noqa: E402

DEFAULT_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fivek-sample" / "train"


def compute_epoch(args: argparse.Namespace) -> None:
    parse_variant(args.variant)
    worker = StepWorker()
    worker.setup(args.variant, args.conv_dim, args.size, args.batch, args.device, args.threads, 0)
    steps_per_epoch = args.images // args.batch
    started = time.perf_counter()
    warm = worker.warmup(args.warmup)
    print(f"# warm-up ({args.warmup} steps, first one {warm['first_s']:.2f} s): "
          f"{time.perf_counter() - started:.1f} s")
    steps = args.steps or steps_per_epoch
    result = worker.run(steps)
    total = sum(result["times"])
    median = statistics.median(result["times"])
    memory = h.fmt_mib(result["peak_bytes"])
    estimate = total * steps_per_epoch / steps
    label = "measured" if steps == steps_per_epoch else f"estimated from {steps} steps"
    print(f"# {args.variant}: {steps} steps, median {median:.4f} s/step, peak memory {memory}")
    print(f"# epoch ({args.images} images, batch {args.batch}: {steps_per_epoch} steps): "
          f"{estimate:.1f} s ({label}); 100 epochs: {estimate * 100 / 3600:.2f} h")
    print(f"# load average: {h.load_average()}")
    print(f"epoch_s={estimate:.2f}")


def loader_only(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from uegan.io.images import load_rgb8
    from uegan.training.data import Augmentation, StepSampler, UnpairedBatches, scan_images

    sample = Path(args.sample)
    low = scan_images(sample / "raw", "low-quality")
    high = scan_images(sample / "exp", "high-quality")
    low = (low * (args.images // len(low) + 1))[:args.images]
    high = (high * (args.images // len(high) + 1))[:args.images]
    augmentation = Augmentation(crop_size=2 * args.size, image_size=args.size)

    # one image: decoding vs augmentation, on one thread as in a loader process
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    decode, augment = [], []
    for info in (low + high)[:20]:
        start = time.perf_counter()
        image = load_rgb8(info.path)
        decode.append(time.perf_counter() - start)
        start = time.perf_counter()
        augmentation(image, rng)
        augment.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    per_image = statistics.median(decode) + statistics.median(augment)
    print(f"# one image: decode {statistics.median(decode) * 1e3:.1f} ms + augment "
          f"{statistics.median(augment) * 1e3:.1f} ms; a batch of {args.batch} low + {args.batch} high "
          f"on one process: {2 * args.batch * per_image:.2f} s")
    dataset = UnpairedBatches(low, high, args.batch, augmentation, seed=0)
    for workers in [int(w) for w in args.workers.split(",")]:
        loader = DataLoader(dataset, batch_size=None, num_workers=workers,
                            sampler=StepSampler(0, 0, args.loader_batches + workers * 2, args.batch),
                            prefetch_factor=2 if workers else None)
        iterator = iter(loader)
        for _ in range(workers * 2):  # let the workers start and fill their queues
            next(iterator)
        start = time.perf_counter()
        count = 0
        for low_batch, _high_batch in iterator:
            count += 1
            assert low_batch.shape == (args.batch, 3, args.size, args.size)
        elapsed = time.perf_counter() - start
        print(f"  workers {workers}: {count / elapsed:.2f} batches/s ({elapsed / count:.3f} s/batch)")
        del iterator, loader
    print(f"# load average: {h.load_average()}; {torch.get_num_threads()} torch threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="fast", help="as in train_step.py")
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--images", type=int, default=2250, help="images per epoch (FiveK: 2250)")
    parser.add_argument("--steps", type=int, default=None, help="time only this many steps and scale")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loader-only", action="store_true")
    parser.add_argument("--workers", default="0,2,4,8")
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("--sample", default=str(DEFAULT_SAMPLE),
                        help="a folder with raw/ and exp/ photos (the FiveK sample)")
    args = parser.parse_args()
    print(f"# {h.describe_machine(args.device)}; load average {h.load_average()}")
    if args.loader_only:
        loader_only(args)
    else:
        compute_epoch(args)


if __name__ == "__main__":
    main()
