"""``uegan export``: write a generator from any checkpoint as ONNX, as a safetensors export, or as
a pretrained folder (``model.safetensors`` + ``config.json`` + ``README.md``, the model card).
Every file written gets the model card beside it (``<name>.md``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from uegan.checkpoints import load_generator, save_generator
from uegan.cli.preflight import add_checkpoint_option, checkpoint_from
from uegan.errors import UserError
from uegan.export import DEFAULT_OPSET, export_onnx
from uegan.pretrained import PRETRAINED_FILES, card_path_for, save_pretrained, write_card

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a generator to ONNX, safetensors or a pretrained folder",
        description="Export the generator of a checkpoint (published .pth, training checkpoint "
                    "or safetensors export; detected). ONNX has dynamic batch, height and width "
                    "(multiples of 16), input 'input' and output 'output' in [-1, 1], and is "
                    "checked against PyTorch with onnxruntime. Each file gets its model card "
                    "beside it (NAME.md: variant, data, steps, validation figures, protocol, "
                    "licence of the data); --folder writes the layout Enhancer.from_pretrained "
                    "and the Hugging Face Hub read.")
    add_checkpoint_option(parser, legacy_positional=True)
    parser.add_argument("--onnx", type=Path, metavar="FILE", help="write ONNX here")
    parser.add_argument("--safetensors", type=Path, metavar="FILE",
                        help="write this project's safetensors generator export here")
    parser.add_argument("--folder", type=Path, metavar="DIR",
                        help="write a pretrained folder here: model.safetensors, config.json and "
                             "README.md (the model card)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(func=run)


def _targets(args: argparse.Namespace) -> list[Path]:
    """Every file the command would write."""
    files = [path for file in (args.onnx, args.safetensors) if file is not None
             for path in (file, card_path_for(file))]
    if args.folder is not None:
        files += [args.folder / name for name in PRETRAINED_FILES]
    return files


def run(args: argparse.Namespace) -> int:
    if args.onnx is None and args.safetensors is None and args.folder is None:
        raise UserError("nothing to do: pass --onnx FILE, --safetensors FILE and/or --folder DIR")
    if args.folder is not None and args.folder.exists() and not args.folder.is_dir():
        raise UserError(f"--folder {args.folder} is a file, expected a folder")
    for target in _targets(args):
        if target.exists() and not args.overwrite:
            raise UserError(f"{target} already exists (pass --overwrite to replace it)")
    loaded = load_generator(checkpoint_from(args), "cpu")
    if args.onnx is not None:
        worst = export_onnx(loaded.generator, args.onnx, opset=args.opset,
                            overwrite=args.overwrite)
        write_card(args.onnx, loaded.card, overwrite=args.overwrite)
        print(f"wrote {args.onnx} and its card {card_path_for(args.onnx)} (checked with "
              f"onnxruntime: largest difference {worst:.1e})")
    if args.safetensors is not None:
        save_generator(args.safetensors, loaded.generator, loaded.variant,
                       overwrite=args.overwrite, card=loaded.card)
        write_card(args.safetensors, loaded.card, overwrite=args.overwrite)
        print(f"wrote {args.safetensors} and its card {card_path_for(args.safetensors)}")
    if args.folder is not None:
        save_pretrained(args.folder, loaded.generator, loaded.variant, loaded.card,
                        overwrite=args.overwrite)
        print(f"wrote {args.folder}: {', '.join(PRETRAINED_FILES)}")
    return 0
