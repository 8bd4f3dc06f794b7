"""``uegan evaluate``: PSNR / SSIM (published protocol), CIEDE2000 and NIMA of a folder of enhanced images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uegan import evaluation, metrics
from uegan.cli import EXIT_FAILED, EXIT_OK
from uegan.cli.preflight import check_threads, select_device
from uegan.runtime import DEVICE_CHOICES, configure_threads

EPILOG = """\
Outputs and labels are paired by file name without extension. PSNR and SSIM follow the
published FiveK protocol (8-bit RGB, 4-pixel border crop, float64; SSIM 'published' = the
scikit-image defaults, 'gaussian' = the 11x11 sigma-1.5 SSIM of Wang et al. / MATLAB).
CIEDE2000: mean colour difference to the label over the same cropped pixels, in CIE Lab
(sRGB, D65; as scikit-image's rgb2lab and deltaE_ciede2000); lower is better.
Means are true means; the published scripts divide by N-1 (their PSNR and SSIM are also printed).
NIMA weights (metrics/NIMA/pretrain-model.pth of the UEGAN repository): --nima-weights, else
$UEGAN_NIMA_WEIGHTS, else $TORCH_HOME/hub/checkpoints/uegan/nima-pretrain-model.pth.
--json / --csv may not name one of the images evaluated (even with --overwrite); whether they
can be written is checked before any image is measured.
Exit status: 0 all evaluated, 1 some files not evaluated (each is named) or a result file could
not be written (disk full), 2 usage error, 130 / 143 stopped by Ctrl-C / SIGTERM."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="measure enhanced images (PSNR, SSIM, CIEDE2000, NIMA)",
        description="Measure a folder of enhanced images against their labels (PSNR, SSIM, "
                    "CIEDE2000) and, with the published weights, with NIMA. Without --label: NIMA only.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="folder of enhanced images")
    parser.add_argument("--label", type=Path, metavar="DIR", help="folder of reference images (same names)")
    parser.add_argument("--ssim", choices=metrics.SSIM_PROTOCOLS, default="published",
                        help="SSIM protocol (default: published)")
    nima_group = parser.add_mutually_exclusive_group()
    nima_group.add_argument("--nima-weights", type=Path, metavar="PATH",
                            help="the published NIMA weights (pretrain-model.pth); NIMA is then required")
    nima_group.add_argument("--no-nima", action="store_true", help="skip NIMA even when weights are found")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write summary and per-image rows as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write per-image rows as CSV")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --json / --csv files")
    parser.add_argument("--device", default="auto",
                        help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then the CPU)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (at least 1)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: by default a bar on a terminal, else a line every "
                             "10 s with the count, the rate and the ETA")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # every usage error before any work: a bad --threads or --device, and an output that cannot
    # be written (a folder, no permission, a file in the way) or that is one of the images read,
    # a prediction or a label (refused with --overwrite too: it would replace that image)
    check_threads(args.threads)
    select_device(args.device)
    evaluation.check_writable([args.json, args.csv], overwrite=args.overwrite,
                              inputs=evaluation.evaluated_files(args.pred, args.label))
    configure_threads(args.threads)
    nima_mode: evaluation.NimaMode = "off" if args.no_nima else "on" if args.nima_weights else "auto"
    config = evaluation.EvaluationConfig(
        pred_dir=args.pred, label_dir=args.label, ssim_protocol=args.ssim, nima=nima_mode,
        nima_weights=args.nima_weights, device=args.device,
        progress=not (args.no_progress or getattr(args, "quiet", False)))
    result = evaluation.evaluate(config)
    if args.json is not None:
        evaluation.write_json(result, args.json, overwrite=args.overwrite)
    if args.csv is not None:
        evaluation.write_csv(result, args.csv, overwrite=args.overwrite)
    print(evaluation.format_summary(result), file=sys.stdout)
    return EXIT_FAILED if result.problems else EXIT_OK
