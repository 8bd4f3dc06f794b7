"""``uegan demo``: train a small UEGAN on scikit-image's sample photos and show what it does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uegan.demo import DEFAULT_OUT, DEFAULT_STEPS, DemoSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a small UEGAN on bundled sample photos (a few minutes) and show the result",
        description=(
            "Build a small unpaired data set from scikit-image's sample photos (nothing is "
            "downloaded): some photos as the high-quality set, others degraded at random "
            "(exposure, white balance, gamma, contrast) as the low-quality set, and held-out "
            "degraded/original pairs. Train a reduced UEGAN on the CPU (a few minutes), "
            "enhance the held-out photos, print PSNR/SSIM of input and output against the "
            "originals, and write before/after images and an HTML page."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"output folder (default: ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, ... "
                             f"when that one is not empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo's outputs in a non-empty --out folder")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="training steps (many more overshoot with the demo's settings: see "
                             "benchmarks/RESULTS.md)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data and training")
    parser.add_argument("--vgg-weights", metavar="PATH", default=None,
                        help="VGG19 ImageNet weights for the fidelity loss (default: the torch hub "
                             "cache file if present, else a random VGG19; nothing is downloaded)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the faster of 1 and all, measured)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uegan.demo import RANDOM_VGG_NOTE, default_out_dir, format_table, run_demo
    from uegan.errors import UserError

    if args.steps < 1:
        raise UserError(f"--steps must be at least 1 (got {args.steps})")
    out = Path(args.out) if args.out else default_out_dir()
    settings = DemoSettings(steps=args.steps, seed=args.seed,
                            vgg_weights=args.vgg_weights, threads=args.threads,
                            progress=sys.stderr.isatty() and not args.quiet)
    print(f"uegan demo: writing to {out}", flush=True)
    result = run_demo(out, settings, overwrite=args.overwrite)
    print()
    if result.vgg == "random":
        print(f"NOTE: {RANDOM_VGG_NOTE}")
    print(f"trained {result.steps} steps in {result.train_seconds:.0f} s "
          f"({result.threads} thread(s)); held-out photos against their originals:\n")
    print(format_table(result))
    verdict = ("the enhanced photos are closer to the originals than the degraded inputs"
               if result.improved else
               "this run did not bring the photos closer to the originals (a short GAN run "
               "varies: try another --seed)")
    print(f"\n{verdict}; total {result.total_seconds:.0f} s")
    print(f"before/after images: {out / 'images'}")
    print(f"page: {(out / 'index.html').resolve().as_uri()}")
    return 0
