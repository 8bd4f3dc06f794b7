"""First-call time of ``uegan enhance`` on one 512 x 512 photo, in every mode.

    python benchmarks/first_call.py [--rounds 3]

Each mode is the whole command in a fresh process (start-up, checkpoint load, the photo read,
enhanced and written), timed by the wall clock, ``--rounds`` times, interleaved; the compiled
mode runs once with an empty compile cache (cold) and then with the cache it filled (warm). The
generator is the published layout (conv_dim 32) with the reference files' random weights. Prints
a table of medians and the ratio to the default.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO.parent / "shared", Path("/work/shared")) if p.is_dir()), None)

MODES = {  # name -> extra flags of uegan enhance
    "default (precision auto)": [],
    "--exact": ["--exact"],
    "--precision bf16": ["--precision", "bf16"],
    "--fast (one image: rewrites, no compile)": ["--fast"],
    "--fast --compile-min 1, cold cache": ["--fast", "--compile-min", "1"],
    "--fast --compile-min 1, warm cache": ["--fast", "--compile-min", "1"],
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_once(workdir: Path, checkpoint: Path, photo: Path, flags: list[str], cache: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    env = {**os.environ, "UEGAN_COMPILE_CACHE": str(cache),
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "uegan", "--quiet", "enhance", str(photo), "-c",
                    str(checkpoint), "-o", str(out), "--no-progress", *flags], check=True, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="uegan-first-call-"))
    try:
        checkpoint = workdir / "published.pth"
        state = torch.load(SHARED / "golden" / "generator_forward.pt", weights_only=False)["state_dict"]
        torch.save({"G_net": state}, checkpoint)
        photo = workdir / "photo.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(photo)
        times: dict[str, list[float]] = {name: [] for name in MODES}
        for round_index in range(args.rounds):
            cold = workdir / f"cache-cold-{round_index}"   # a new, empty cache each round
            warm = workdir / "cache-warm"                  # filled by the first cold run
            for name, flags in MODES.items():
                if "cold" in name:
                    cache = cold
                elif "warm" in name:
                    if not warm.exists():
                        shutil.copytree(cold, warm)
                    cache = warm
                else:
                    cache = workdir / "cache-unused"
                times[name].append(run_once(workdir, checkpoint, photo, flags, cache))
        print(f"# {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{args.rounds} rounds (interleaved)")
        print("| mode | median s | runs | vs default |")
        print("|---|---|---|---|")
        base = statistics.median(times["default (precision auto)"])
        for name, values in times.items():
            median = statistics.median(values)
            runs = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {median:.1f} | {runs} | {median / base:.2f}x |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
