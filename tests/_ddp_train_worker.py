"""Started by torchrun in test_training_ddp.py: one training process of ``uegan train``.

Usage: ``torchrun ... _ddp_train_worker.py DUMP_DIR ARGS [--then ARGS ...]``, each ARGS a list of
``uegan train`` arguments. The worker joins the process group itself (so it outlives each run),
then trains each ARGS in turn exactly as the command does, and after each run writes this rank's
parameters and buffers (G and D) to ``DUMP_DIR/run<I>_rank<R>.pt`` for the test to compare.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from uegan.cli import _configure_logging, build_parser
from uegan.cli.train import config_from_args
from uegan.training.trainer import Trainer


def main() -> int:
    dump = Path(sys.argv[1])
    runs, current = [], []
    for arg in sys.argv[2:]:
        if arg == "--then":
            runs.append(current)
            current = []
        else:
            current.append(arg)
    runs.append(current)
    rank = int(os.environ["RANK"])
    _configure_logging(debug=False, quiet=rank != 0)  # as `uegan train` does under torchrun
    dist.init_process_group("gloo")
    for index, argv in enumerate(runs):
        trainer = Trainer(config_from_args(build_parser().parse_args(["train", *argv])))
        assert (trainer.dist.rank, trainer.dist.world_size) == (rank, int(os.environ["WORLD_SIZE"]))
        trainer.fit()
        state = {f"G.{k}": v for k, v in trainer.generator.state_dict().items()}
        state.update({f"D.{k}": v for k, v in trainer.discriminator.state_dict().items()})
        torch.save(state, dump / f"run{index}_rank{rank}.pt")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
