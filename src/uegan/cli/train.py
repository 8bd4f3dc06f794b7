"""``uegan train``: train a UEGAN variant on a folder of low-quality and one of high-quality photos.

Multi-process: ``torchrun --nproc_per_node N -m uegan train ...`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from uegan.runtime import DEVICE_CHOICES, PRECISIONS
from uegan.training.config import (TrainConfig, parse_set_options, resolve_train_config,
                                   settings_table)
from uegan.variants import VARIANTS

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
DEFAULTS = TrainConfig()  # the published FiveK settings: what --help calls the defaults

# command-line flag -> configuration field (values left at None are not overrides)
FLAG_FIELDS = ("variant", "low", "high", "val_low", "val_label", "out", "epochs", "steps",
               "save_every", "device", "seed", "precision", "vgg_weights", "batch_size",
               "num_workers", "nima_weights", "keep_last", "fast_step", "compile", "threads",
               "init_from")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a UEGAN variant on unpaired low- and high-quality photos",
        description=(
            "Train UEGAN on two unpaired folders of photos (searched recursively for png, jpg, "
            "jpeg, tif, tiff, webp and bmp files). Settings: the published FiveK defaults (shown "
            "below), then --config FILE (a YAML preset, see configs/), then the flags below, then "
            "--set; --print-config shows the result and every --set key. "
            "Several processes: torchrun --nproc_per_node N -m uegan train ..."),
    )
    add_training_options(parser.add_argument_group("data and training"))
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="RUN_DIR", help="run directory (checkpoints, logs, exports)")
    output.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration and every --set key with its type "
                             "and default, then exit")
    output.add_argument("--skip-bad-images", action="store_true", default=None,
                        help="skip unreadable image files (counted in the log) instead of stopping")
    model = parser.add_argument_group("model")
    model.add_argument("--variant", choices=sorted(VARIANTS), metavar="NAME",
                       help=f"model variant (default {DEFAULTS.variant}; `uegan variants` lists them)")
    model.add_argument("--seed", type=int, metavar="N", help=f"random seed (default {DEFAULTS.seed})")
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--save-every", type=int, metavar="N", help=f"steps between checkpoints (default {DEFAULTS.save_every})")
    run_group.add_argument("--keep-last", type=int, metavar="K", help=f"step checkpoints kept, besides the best (default {DEFAULTS.keep_last})")
    run_group.add_argument("--resume", action="store_true",
                           help="continue from the newest intact checkpoint in RUN_DIR")
    run_group.add_argument("--threads", type=int, metavar="N",
                           help="torch CPU threads per process (default: torch's choice)")
    run_group.add_argument("--no-progress", action="store_true",
                           help="no progress bar and no validation progress (the loss lines, "
                                "with elapsed time and ETA, still go to train.log)")
    speed = parser.add_argument_group(
        "speed-ups", "the same updates as the published step up to floating-point rounding "
        "(uegan.runtime, uegan.models.fast; figures in benchmarks/RESULTS.md)")
    speed.add_argument("--fast-step", action="store_true", default=None,
                       help="D frozen during the G step, the D step's three D calls joined in one, "
                            "fused Adam, conv-first upsampling in G, "
                            "output-scaled spectral norm in D")
    speed.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile G, D and VGG19 (needs a C++ compiler on CPU; the first "
                            "run compiles for minutes, later runs reuse the cache in "
                            "$UEGAN_COMPILE_CACHE, default <tmp>/uegan-torch-compile-<user>)")
    parser.set_defaults(func=run)


def add_training_options(group: argparse._ArgumentGroup) -> None:
    """The options of ``uegan train`` that ``uegan study`` passes on to every run: one definition
    for both commands (``--set`` collects into ``set_values``, a list)."""
    group.add_argument("--config", metavar="FILE", help="YAML preset of training settings")
    group.add_argument("--low", metavar="DIR", help="folder of low-quality photos (the inputs)")
    group.add_argument("--high", metavar="DIR", help="folder of high-quality photos (unpaired)")
    group.add_argument("--val-low", metavar="DIR", help="validation inputs")
    group.add_argument("--val-label", metavar="DIR", help="validation labels (matched by file name)")
    group.add_argument("--vgg-weights", metavar="PATH",
                       help="VGG19 ImageNet weights (vgg19-dcbb9e9d.pth) for the fidelity loss; "
                            "default: the torch hub cache; 'random' for random weights (tests only)")
    group.add_argument("--init-from", metavar="CHECKPOINT",
                       help="fine-tune: start G, and D when the file holds one, from these weights "
                            "(a published .pth, a training checkpoint or an export); the step "
                            "count, optimisers and schedule start fresh. With --resume, a "
                            "checkpoint in RUN_DIR wins")
    group.add_argument("--epochs", type=int, metavar="N", help=f"epochs (default {DEFAULTS.epochs})")
    group.add_argument("--steps", type=int, metavar="N",
                       help="stop after N optimiser steps in total (overrides --epochs)")
    group.add_argument("--batch-size", type=int, metavar="N",
                       help=f"images per process and step (default {DEFAULTS.batch_size})")
    group.add_argument("--device", help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then "
                                        f"the CPU; under torchrun each process its own GPU)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help=f"fp32, bf16 or fp16 (default {DEFAULTS.precision})")
    group.add_argument("--num-workers", type=int, metavar="N",
                       help=f"data-loading processes (default {DEFAULTS.num_workers})")
    group.add_argument("--nima-weights", metavar="PATH",
                       help="NIMA weights (pretrain-model.pth): also measure NIMA when validating")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_values",
                       help="any other setting, e.g. --set crop_size=384 (repeatable)")


def config_from_args(args: argparse.Namespace):
    config = resolved_config(args)
    config.require_paths()
    return config


def resolved_config(args: argparse.Namespace) -> TrainConfig:
    """The configuration the flags give (paths not checked)."""
    overrides = {name: getattr(args, name) for name in FLAG_FIELDS if getattr(args, name) is not None}
    if args.skip_bad_images:
        overrides["skip_bad_images"] = True
    if args.resume:
        overrides["resume"] = True
    if args.no_progress:
        overrides["progress"] = False  # (on a terminal a bar; elsewhere log lines with an ETA)
    return resolve_train_config(args.config, overrides, parse_set_options(args.set_values))


def format_settings(config: TrainConfig) -> str:
    """The resolved settings, one per line: ``key = value`` with the type and the default
    (``*``: differs from the default); every key can be given as ``--set key=value``."""
    rows = settings_table(config)
    width = max(len(name) for name, *_ in rows)
    lines = ["# the resolved configuration; every key can be given as --set KEY=VALUE",
             "# (* differs from the default)"]
    for name, kind, default, value in rows:
        mark = "*" if value != default else " "
        lines.append(f"{mark} {name:<{width}} = {value!r:<24} # {kind}, default {default!r}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from uegan.training.trainer import Trainer, TrainingError

    if int(os.environ.get("RANK", "0")) != 0 and not args.debug:
        logging.getLogger().setLevel(logging.WARNING)  # one set of logs: rank 0's
    if args.print_config:
        print(format_settings(resolved_config(args)))
        return 0
    config = config_from_args(args)
    try:
        result = Trainer(config).fit()
    except TrainingError as error:
        print(f"uegan train: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not result.interrupted:
        return 0
    return 128 + result.stop_signal if result.stop_signal else EXIT_INTERRUPTED  # 130 or 143
