"""Wall time of the same small ``uegan train`` run with two source trees (e.g. before and after a
refactor), alternated in one run on one machine, median of repeats.

    git worktree add /tmp/base <commit>
    python benchmarks/trainer_versions.py --tree base=/tmp/base/src --tree head=src \
        --low /tmp/demo0/data/train/low --high /tmp/demo0/data/train/high --steps 40 --repeats 3

Each repeat runs every tree once (``python -m uegan train`` with ``PYTHONPATH`` pointing at that
tree's ``src``, a fresh run folder, the demo's reduced settings, random VGG19, fixed random
seed, ``--threads`` when given), so a change of machine load hits all trees alike. Prints, per
tree, the median wall seconds of the whole command and of its training steps (from the steps/s
of the log), and the ratio to the first tree.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ["--set", "conv_dim=8", "--set", "d_conv_dim=8", "--set", "image_size=96",
            "--set", "crop_size=96", "--batch-size", "2", "--num-workers", "0",
            "--vgg-weights", "random", "--seed", "0", "--no-progress"]


def run_once(src: Path, args: argparse.Namespace, out: Path) -> tuple[float, float | None]:
    """(wall seconds, mean steps/s of the log's training lines) of one run."""
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    command = [sys.executable, "-m", "uegan", "train", "--low", args.low, "--high", args.high,
               "--steps", str(args.steps), "--out", str(out),
               *(["--threads", str(args.threads)] if args.threads else []), "--set", f"log_every={max(1, args.steps // 10)}", *SETTINGS]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{src}: uegan train failed:\n{result.stderr[-2000:]}")
    rates = [float(m) for m in re.findall(r"([0-9.]+) steps/s", result.stderr)]
    return wall, (statistics.mean(rates[1:]) if len(rates) > 1 else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=SRC",
                        help="a name and a source folder (the one holding uegan/); repeatable")
    parser.add_argument("--low", required=True)
    parser.add_argument("--high", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int,
                        help="torch threads (default: torch's choice; trees older than the "
                             "--threads option of uegan train need the default)")
    args = parser.parse_args()
    trees = [(name, Path(src)) for name, _, src in (t.partition("=") for t in args.tree)]
    walls: dict[str, list[float]] = {name: [] for name, _ in trees}
    rates: dict[str, list[float]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, src in trees:
                wall, rate = run_once(src, args, Path(scratch) / f"{name}-{repeat}")
                walls[name].append(wall)
                if rate is not None:
                    rates[name].append(rate)
    first = trees[0][0]
    print(f"{args.steps} steps, threads {args.threads or 'torch default'}, {args.repeats} repeats (medians)")
    print(f"{'tree':<10} {'wall s':>8} {'ratio':>6} {'steps/s':>8} {'ratio':>6}")
    for name, _ in trees:
        wall, base_wall = statistics.median(walls[name]), statistics.median(walls[first])
        rate = statistics.median(rates[name]) if rates[name] else float("nan")
        base_rate = statistics.median(rates[first]) if rates[first] else float("nan")
        print(f"{name:<10} {wall:>8.1f} {wall / base_wall:>6.2f} {rate:>8.2f} {rate / base_rate:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
