"""``uegan report``: the study's table, curves and image grid from training run folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uegan.apps import report

EPILOG = """\
Each RUN_DIR is a folder written by 'uegan train' (config.json, metrics.jsonl, optionally
val_images/epoch_XXXX/). Writes report.md and, with matplotlib (pip install 'uegan[plot]'),
validation_curves.png and loss_curves.png; with --val-low and --val-label also grid.png
(input | each run | label). Existing files are kept unless --overwrite is given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="the study's table, curves and image grid from run folders",
        description="Summarise training runs: best and last validation figures per run, "
                    "validation and loss curves, and a grid of validation images.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="training run folders")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the report files")
    parser.add_argument("--val-low", type=Path, metavar="DIR", help="validation inputs (for the image grid)")
    parser.add_argument("--val-label", type=Path, metavar="DIR", help="validation labels (for the image grid)")
    parser.add_argument("--grid-images", type=int, default=4, metavar="N",
                        help="validation images in the grid (default: 4)")
    parser.add_argument("--best-by", choices=report.VAL_METRICS, default="psnr",
                        help="metric that picks the best epoch: its highest value, or its lowest "
                             "for ciede2000 (default: psnr)")
    parser.add_argument("--no-plots", action="store_true", help="skip the curves even with matplotlib")
    parser.add_argument("--overwrite", action="store_true", help="replace existing report files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = report.ReportConfig(
        run_dirs=tuple(args.run_dirs), out_dir=args.out, val_low=args.val_low, val_label=args.val_label,
        grid_images=args.grid_images, best_by=args.best_by, overwrite=args.overwrite,
        plots=not args.no_plots)
    result = report.build_report(config)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in result.written:
        print(path)
    return 0
