"""bf16 training judged by its results: the same variants and random seeds trained in fp32 and
in bf16 on the demo's data, compared against the spread between seeds.

    python benchmarks/bf16_training.py --out /tmp/bf16-study [--variants uegan-curve,uegan]
        [--seeds 3] [--threads 1]

Runs ``uegan study`` twice (``--precision fp32`` and ``--precision bf16``) with the enhancement
study's settings (docs/enhancement-study/demo.yaml: conv_dim 8, 96 px, batch 2, 240 steps, a
random VGG19) on the demo's data set (seed 0), then prints, per variant and measure, the fp32
and bf16 means ± standard deviations over the seeds and whether bf16 departs from fp32 by more
than the seeds' spread (|Δ mean| > 2 x pooled std, the rule of ``uegan study``). A finished study
is kept and not trained again.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from uegan.apps.demo_data import build_dataset  # noqa: E402
from uegan.apps.seeds import SPREAD_FACTOR  # noqa: E402

MEASURES = (("psnr", "PSNR", False), ("ssim", "SSIM", False), ("ciede2000", "CIEDE2000", True))


def run_study(out: Path, data: Path, precision: str, args: argparse.Namespace) -> Path:
    root = out / precision
    study = root / "report" / "study.json"
    if study.is_file():
        return study
    command = [sys.executable, "-m", "uegan", "study", "--variants", args.variants,
               "--seeds", str(args.seeds), "--out", str(root), "--low", str(data / "train/low"),
               "--high", str(data / "train/high"), "--val-low", str(data / "test/low"),
               "--val-label", str(data / "test/label"),
               "--config", str(REPO / "docs/enhancement-study/demo.yaml"),
               "--vgg-weights", "random", "--threads", str(args.threads),
               "--precision", precision, "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"# {precision}: {time.perf_counter() - start:.0f} s", flush=True)
    return study


def values(study: Path) -> dict[str, dict[str, list[float]]]:
    runs = json.loads(study.read_text())["runs"]
    table: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for key, _, _ in MEASURES:
            table.setdefault(run["variant"], {}).setdefault(key, []).append(run[key])
    return table


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default="uegan-curve,uegan")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    data = args.out / "demo-data"
    if not (data / "train").is_dir():
        build_dataset(data, seed=0)
    fp32 = values(run_study(args.out, data, "fp32", args))
    bf16 = values(run_study(args.out, data, "bf16", args))
    print("| variant | measure | fp32 (mean ± std) | bf16 (mean ± std) | Δ mean | 2 x pooled std | bf16 departs |")
    print("|---|---|---|---|---|---|---|")
    for variant in fp32:
        for key, label, _lower in MEASURES:
            (m32, s32), (m16, s16) = mean_std(fp32[variant][key]), mean_std(bf16[variant][key])
            pooled = math.sqrt((s32 ** 2 + s16 ** 2) / 2)
            departs = abs(m16 - m32) > SPREAD_FACTOR * pooled
            print(f"| {variant} | {label} | {m32:.4f} ± {s32:.4f} | {m16:.4f} ± {s16:.4f} | "
                  f"{m16 - m32:+.4f} | {SPREAD_FACTOR * pooled:.4f} | {'yes' if departs else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
