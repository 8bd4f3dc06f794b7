"""``uegan export``: write a generator from any checkpoint as ONNX or as a safetensors export."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from uegan.checkpoints import load_generator, save_generator
from uegan.cli.preflight import add_checkpoint_option, checkpoint_from
from uegan.errors import UserError
from uegan.export import DEFAULT_OPSET, export_onnx

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a generator to ONNX or safetensors",
        description="Export the generator of a checkpoint (published .pth, training checkpoint "
                    "or safetensors export; detected). ONNX has dynamic batch, height and width "
                    "(multiples of 16), input 'input' and output 'output' in [-1, 1], and is "
                    "checked against PyTorch with onnxruntime.")
    add_checkpoint_option(parser, legacy_positional=True)
    parser.add_argument("--onnx", type=Path, metavar="FILE", help="write ONNX here")
    parser.add_argument("--safetensors", type=Path, metavar="FILE",
                        help="write this project's safetensors generator export here")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.onnx is None and args.safetensors is None:
        raise UserError("nothing to do: pass --onnx FILE and/or --safetensors FILE")
    for target in (args.onnx, args.safetensors):
        if target is not None and target.exists() and not args.overwrite:
            raise UserError(f"{target} already exists (pass --overwrite to replace it)")
    loaded = load_generator(checkpoint_from(args), "cpu")
    if args.onnx is not None:
        worst = export_onnx(loaded.generator, args.onnx, opset=args.opset,
                            overwrite=args.overwrite)
        print(f"wrote {args.onnx} (checked with onnxruntime: largest difference {worst:.1e})")
    if args.safetensors is not None:
        save_generator(args.safetensors, loaded.generator, loaded.variant,
                       overwrite=args.overwrite)
        print(f"wrote {args.safetensors}")
    return 0
