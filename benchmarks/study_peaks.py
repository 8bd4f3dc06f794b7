"""Where each variant of a `uegan study` peaks and where it overshoots, from the runs' own
validation rows (metrics.jsonl): per variant and validated step, mean ± std over seeds of PSNR,
SSIM and CIEDE2000, then the step with the best mean of each and the last step's distance to it.

    python benchmarks/study_peaks.py runs/study [--markdown]

ROOT holds ``<variant>/seed<k>/metrics.jsonl`` as `uegan study` writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from uegan.metrics import LOWER_IS_BETTER

METRICS = ("psnr", "ssim", "ciede2000")
DIGITS = {"psnr": 2, "ssim": 4, "ciede2000": 2}


def validation_rows(run: Path) -> list[dict]:
    rows = []
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("kind") == "val":
            rows.append(row)
    return rows


def collect(root: Path) -> dict[str, dict[int, dict[str, list[float]]]]:
    """variant -> step -> metric -> values over seeds."""
    table: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in sorted(root.glob("*/seed*")):
        if not (run / "metrics.jsonl").is_file():
            continue
        for row in validation_rows(run):
            for metric in METRICS:
                if row.get(metric) is not None:
                    table[run.parent.name][int(row["step"])][metric].append(float(row[metric]))
    return table


def cell(values: list[float], metric: str) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{DIGITS[metric]}f} ± {std:.{DIGITS[metric]}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the --out folder of a `uegan study`")
    args = parser.parse_args()
    table = collect(args.root)
    if not table:
        raise SystemExit(f"no validated runs under {args.root}")
    print("| variant | step | seeds | PSNR | SSIM | CIEDE2000 |")
    print("|---|---|---|---|---|---|")
    for variant, steps in table.items():
        for step in sorted(steps):
            values = steps[step]
            print(f"| {variant} | {step} | {len(values['psnr'])} | "
                  + " | ".join(cell(values[m], m) for m in METRICS) + " |")
    print("\n| variant | best mean PSNR at step | best mean SSIM at step | best mean CIEDE2000 at step "
          "| last step: PSNR / SSIM / CIEDE2000 against the best |")
    print("|---|---|---|---|---|")
    for variant, steps in table.items():
        best = {}
        for metric in METRICS:
            means = {step: statistics.fmean(v[metric]) for step, v in steps.items() if v[metric]}
            pick = min if metric in LOWER_IS_BETTER else max
            best[metric] = pick(means, key=means.get), means
        last = max(steps)
        change = " / ".join(f"{best[m][1][last] - best[m][1][best[m][0]]:+.{DIGITS[m]}f}" for m in METRICS)
        print(f"| {variant} | " + " | ".join(f"{best[m][0]} ({best[m][1][best[m][0]]:.{DIGITS[m]}f})"
                                             for m in METRICS) + f" | {change} (step {last}) |")


if __name__ == "__main__":
    main()
