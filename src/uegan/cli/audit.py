"""``uegan audit --variant NAME`` or ``uegan audit -c CHECKPOINT``: list the parameters and modules that
do nothing."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from uegan.apps.audit import GRAD_RATIO, INITS, OUTPUT_THRESHOLD, audit_generator, build_for_audit
from uegan.errors import UserError
from uegan.io.files import atomic_write_text

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="find parameters with zero gradient and modules without effect",
        description=(
            "Run a few random batches through a generator (float64) and list every parameter "
            "whose gradient is zero and every module whose perturbation leaves the output "
            "unchanged, naming the known findings of the published model (the GAM's inert global "
            "branch, the published study's SE block that only multiplies by 0.5). Always exits 0: it is a "
            "report."))
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--variant", help="a variant name (see `uegan variants`), built at random")
    target.add_argument("--checkpoint", "-c", metavar="CHECKPOINT",
                        help="a generator file (published .pth, training checkpoint, "
                             ".safetensors export)")
    parser.add_argument("legacy_target", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--conv-dim", type=int, default=8,
                        help="channels of the first stage when auditing a variant (default 8)")
    parser.add_argument("--init", choices=INITS, default="generic",
                        help="weights when auditing a variant: generic (every parameter random, "
                             "zero-initialised ones included; default), default (PyTorch's init) or "
                             "orthogonal (the published gain 0.02: every activation is tiny)")
    parser.add_argument("--batches", type=int, default=3, help="random batches (default 3)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per batch (default 2)")
    parser.add_argument("--size", type=int, default=64,
                        help="image side, a multiple of 16 (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--grad-ratio", type=float, default=GRAD_RATIO,
                        help=f"zero gradient: float64 |grad| <= this x float32 |grad|, i.e. rounding "
                             f"noise (default {GRAD_RATIO:g})")
    parser.add_argument("--output-threshold", type=float, default=OUTPUT_THRESHOLD,
                        help=f"no effect: max |delta output| <= this (default {OUTPUT_THRESHOLD:g})")
    parser.add_argument("--all", action="store_true", help="list every parameter and module")
    parser.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.set_defaults(func=run)


def _target(args: argparse.Namespace) -> str:
    """The variant or checkpoint to audit (the positional form of earlier versions: a warning)."""
    given = args.variant or args.checkpoint
    if given is not None and args.legacy_target is not None:
        raise UserError(f"two targets given ({args.legacy_target} and {given}): give one")
    if args.legacy_target is not None:
        log.warning("give the target as --variant NAME or -c/--checkpoint FILE: the positional "
                    "form will go in a later version")
        return args.legacy_target
    if given is None:
        raise UserError("give --variant NAME (built at random) or -c/--checkpoint FILE")
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        raise UserError(f"-c {args.checkpoint}: no such checkpoint file")
    return given


def run(args: argparse.Namespace) -> int:
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise UserError(f"{args.json} already exists (pass --overwrite to replace it)")
    generator, variant, source = build_for_audit(_target(args), conv_dim=args.conv_dim,
                                                 init=args.init, seed=args.seed)
    report = audit_generator(generator, source=source, variant=variant, batches=args.batches,
                             batch_size=args.batch_size, size=args.size, seed=args.seed,
                             grad_ratio=args.grad_ratio,
                             output_threshold=args.output_threshold)
    print(report.format_text(show_all=args.all))
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=1) + "\n",
                          overwrite=args.overwrite)
    return 0
