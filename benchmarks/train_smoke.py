"""Train the smoke configuration on the FiveK sample and time every step.

    python benchmarks/train_smoke.py --threads 1
    python benchmarks/train_smoke.py --steps 20 --vgg-weights random --device cpu

``configs/smoke.yaml`` (conv_dim 8, crop 256 -> 128 px, batch 2) on
``../shared/data/fivek-sample`` (3 low-quality and 3 high-quality training photos, 3 validation
pairs): the whole trainer (data loading, the published step, logging, checkpoints, validation),
in this process. A step's time is the wall time between two rows of ``metrics.jsonl`` (logged
every step here) without validation and checkpoint writing, which are reported apart. Prints a
table and, as the last line, ``median_s=<seconds per step>`` (median over all steps but the first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UEGAN_SHARED", REPO.parent / "shared"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vgg-weights", default="random",
                        help="VGG19 file, or 'random' (the same cost as real weights)")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "fivek-sample")
    parser.add_argument("--no-validation", action="store_true")
    args = parser.parse_args()

    import torch

    from uegan.training.config import load_config
    from uegan.training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = dict(low=str(args.data / "train" / "raw"), high=str(args.data / "train" / "exp"),
                         out=str(Path(tmp) / "run"), steps=args.steps, device=args.device,
                         vgg_weights=args.vgg_weights, log_every=1, progress=False,
                         tensorboard=False)
        if not args.no_validation:
            overrides.update(val_low=str(args.data / "val" / "raw"),
                             val_label=str(args.data / "val" / "label"))
        config = load_config(REPO / "configs" / "smoke.yaml", overrides)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = Trainer(config).fit()
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if row["kind"] == "train"]
    seconds = [1.0 / row["steps_per_s"] for row in steps]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"smoke training: conv_dim {config.conv_dim}, {config.image_size} px, batch "
          f"{config.batch_size}, {result.step} steps on {args.device}, torch threads "
          f"{torch.get_num_threads()}, load average {load:.1f} on {os.cpu_count()} CPUs")
    print("| step | d_loss | g_loss | seconds |")
    print("|---|---|---|---|")
    for row, sec in zip(steps, seconds):
        print(f"| {row['step']} | {row['d_loss']:.4f} | {row['g_loss']:.4f} | {sec:.3f} |")
    timed = seconds[1:] or seconds
    median = statistics.median(timed)
    print(f"first step {seconds[0]:.3f} s; median of the rest {median:.3f} s "
          f"({1 / median:.3f} steps/s); whole run incl. start-up, validation and checkpoints "
          f"{total:.1f} s wall, {cpu:.1f} s CPU ({cpu / result.step:.2f} CPU-s per step, upper bound)")
    print(f"median_s={median:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
