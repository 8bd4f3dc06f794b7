"""``uegan study --variants A,B --seeds N``: train each variant with N random seeds and compare
them against the spread between random seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from uegan.errors import UserError
from uegan.cli.train import add_training_options

EPILOG = """\
Runs go to OUT/<variant>/seed<k>/ (ordinary 'uegan train' run folders); the report (report.md with
mean ± std per variant and whether each difference to the baseline exceeds the random-seed spread,
seeds.png, study.json) to OUT/report/ or --report-out. Run the same command again to resume an
interrupted study: finished runs are kept, interrupted ones resumed.

Example (small, CPU):
  uegan study --variants uegan-charbonnier,uegan-charbonnier-se,uegan-charbonnier-half --seeds 3 \\
      --low data/train/raw --high data/train/exp --val-low data/val/raw --val-label data/val/label \\
      --steps 40 --batch-size 2 --vgg-weights vgg19.pth --out runs/study \\
      --set conv_dim=8 --set d_conv_dim=8 --set image_size=128 --set crop_size=256"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study", help="train variants with several seeds and compare them against the random-seed spread",
        description=(
            "Train every variant with N seeds (one after another in this process, or each as a "
            "torchrun job), validate each run after its last step on the paired validation set, "
            "and write the report: mean ± std per variant, and whether each variant's difference "
            "to the baseline exceeds the spread between seeds (|Δ mean| > 2 × pooled std)."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", required=True, metavar="A,B,...",
                        help="comma-separated variant names (see `uegan variants`)")
    parser.add_argument("--seeds", required=True, type=int, metavar="N",
                        help="random seeds per variant: FIRST_SEED .. FIRST_SEED + N - 1")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S", help="the first random seed (default 0)")
    parser.add_argument("--baseline", metavar="VARIANT",
                        help="variant the others are compared with (default: the first)")
    parser.add_argument("--out", required=True, type=Path, metavar="ROOT", help="study folder")
    parser.add_argument("--report-out", type=Path, metavar="DIR", help="default ROOT/report")
    parser.add_argument("--torchrun", type=int, default=0, metavar="NPROC",
                        help="run each training as 'torchrun --nproc_per_node NPROC' (default: in "
                             "this process, one run after another)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads (per process with --torchrun); on a busy machine 1 "
                             "can be several times faster than all")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: by default bars on a terminal, else a line after each "
                             "run with the study's count and ETA, and the runs' loss lines")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    add_training_options(parser.add_argument_group(
        "training options (as for uegan train, the same for every run)"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uegan.apps.study import TRAIN_FLAGS, StudyPlan, parse_variants, run_study

    variants = parse_variants(args.variants)
    if args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    for item in args.set_values:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key in ("variant", "seed", "out", "resume"):
            raise UserError(f"--set {item}: a study sets {key} itself (use --variants, --seeds, --out)")
    if args.baseline is not None:
        if args.baseline not in variants:
            raise UserError(f"--baseline {args.baseline} is not one of --variants")
        variants = (args.baseline, *(v for v in variants if v != args.baseline))
    plan = StudyPlan(
        variants=variants, seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        root=args.out, preset=args.config,
        train_options={name: getattr(args, name) for name in TRAIN_FLAGS},
        set_values=tuple(args.set_values), torchrun=args.torchrun, threads=args.threads,
        progress=not args.no_progress,
        report_dir=args.report_out,
        baseline=args.baseline, overwrite=args.overwrite)
    result = run_study(plan)
    print("\n".join(result.comparison))
    for path in result.report_files:
        print(path)
    return 0
