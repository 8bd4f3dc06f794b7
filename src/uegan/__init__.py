"""uegan: unsupervised photo enhancement with UEGAN (Ni et al., IEEE TIP 2020).

The public pieces, importable from here::

    from uegan import Enhancer, Trainer, TrainConfig, evaluate, EvaluationConfig

They load on first use, so ``import uegan`` stays light (the command line imports what each
sub-command needs).
"""

from __future__ import annotations

import importlib
from typing import Any

from uegan.errors import UserError

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "Enhancer": "uegan.inference",
    "Trainer": "uegan.training.trainer",
    "TrainConfig": "uegan.training.config",
    "evaluate": "uegan.evaluation",
    "EvaluationConfig": "uegan.evaluation",
}

__all__ = ["EvaluationConfig", "Enhancer", "TrainConfig", "Trainer", "UserError", "__version__",
           "evaluate"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'uegan' has no attribute {name!r}")
