"""``uegan demo``: train a small UEGAN on scikit-image's sample photos and show what it does."""

from __future__ import annotations

import argparse
from pathlib import Path

from uegan.apps.demo_results import COMPARE_WITH, DEFAULT_OUT, DEMO_STEPS, METRICS, RANDOM_VGG_NOTE, DemoSettings
from uegan.errors import UserError
from uegan.variants import RECOMMENDED_VARIANT, get_variant


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a small UEGAN on bundled sample photos (a few minutes) and show the result",
        description=(
            "Build a small unpaired data set from scikit-image's sample photos (nothing is "
            "downloaded): some photos as the high-quality set, others degraded at random "
            "(exposure, white balance, gamma, contrast) as the low-quality set, and held-out "
            "degraded/original pairs. Train a reduced UEGAN on the CPU (a few minutes), "
            "enhance the held-out photos, print PSNR/SSIM of input and output against the "
            "originals, and write before/after images and an HTML page."))
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"output folder (default: ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, ... "
                             f"when that one is not empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo's outputs in a non-empty --out folder")
    parser.add_argument("--variant", default=RECOMMENDED_VARIANT,
                        help=f"the variant to train and show (default {RECOMMENDED_VARIANT}; "
                             f"`uegan variants` lists them)")
    parser.add_argument("--compare-with", metavar="VARIANT", default=COMPARE_WITH,
                        help=f"a second variant trained on the same data and shown beside it "
                             f"(default {COMPARE_WITH}); 'none' trains only --variant")
    steps = ", ".join(f"{name} {count}" for name, count in DEMO_STEPS.items())
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps of --variant (default: its measured best: {steps}; "
                             f"120 for the others; the published generator overshoots when "
                             f"trained much longer: see benchmarks/RESULTS.md)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data and training (default 0)")
    parser.add_argument("--vgg-weights", metavar="PATH", default=None,
                        help="VGG19 ImageNet weights for the fidelity loss (default: the torch hub "
                             "cache file if present, else a random VGG19; nothing is downloaded)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the faster of 1 and all, measured)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: by default a bar on a terminal, else log lines with "
                             "the losses, the elapsed time and the ETA")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uegan.apps.demo import default_out_dir, format_table, run_demo  # training: only when run

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1 (got {args.steps})")
    get_variant(args.variant)
    compare_with = None if args.compare_with.lower() == "none" else args.compare_with
    if compare_with is not None:
        get_variant(compare_with)
    out = Path(args.out) if args.out else default_out_dir()
    settings = DemoSettings(variant=args.variant, compare_with=compare_with, steps=args.steps,
                            seed=args.seed, vgg_weights=args.vgg_weights, threads=args.threads,
                            progress=not (args.no_progress or args.quiet))
    print(f"uegan demo: writing to {out}", flush=True)
    result = run_demo(out, settings, overwrite=args.overwrite)
    print()
    if result.vgg == "random":
        print(f"NOTE: {RANDOM_VGG_NOTE}")
    trained = "; ".join(f"{run.variant} {run.steps} steps in {run.train_seconds:.0f} s"
                        for run in result.models)
    print(f"trained {trained} ({result.threads} thread(s)); held-out photos against their "
          f"originals (dE00: CIEDE2000 colour difference, lower is better):\n")
    print(format_table(result))
    print()
    for run in result.models:
        improves = result.improves(run.variant)
        better = [name for name in METRICS if improves[name]]
        worse = [name for name in METRICS if not improves[name]]
        verdict = ("closer to the originals than the inputs on every measure" if not worse else
                   f"better than the inputs on {', '.join(better) or 'nothing'}, worse on "
                   f"{', '.join(worse)}")
        print(f"{run.variant}: {verdict}")
    print(f"total {result.total_seconds:.0f} s")
    print(f"images: {out / 'images'}")
    print(f"page: {(out / 'index.html').resolve().as_uri()}")
    return 0
