"""The demo's settings (reduced model, schedule per variant) and its results.

``uegan demo`` trains a reduced model with the UEGAN objective unchanged (relativistic hinge
quality loss, VGG fidelity loss, multiscale identity loss), each variant for its own fixed number
of steps (:data:`DEMO_SCHEDULE`), and measures the held-out photos against their originals under
the published protocol (8-bit, 4-pixel border crop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from uegan.apps.demo_data import DEFAULT_HELD_OUT_COPIES, DEFAULT_LOW_COPIES
from uegan.metrics import FULL_REFERENCE, LOWER_IS_BETTER
from uegan.variants import RECOMMENDED_VARIANT

# The demo's schedule per variant: (steps, learning-rate factor on the published rates), chosen
# by measurement (benchmarks/RESULTS.md, "Demo"). The published generator overshoots with these
# settings when trained much longer (brighter and flatter than the originals, colour blotches that
# follow texture), so it keeps the step count it was tuned for. The curve generator has few
# parameters and learns steadily at twice the published rates; trained much longer, its colours
# drift towards magenta.
DEMO_SCHEDULE: dict[str, tuple[int, float]] = {"uegan": (120, 1.0), "uegan-curve": (200, 2.0)}
FALLBACK_SCHEDULE = (120, 1.0)
DEFAULT_OUT = "uegan-demo"             # the output folder (then uegan-demo-2, ...)
DEMO_STEPS = {name: steps for name, (steps, _) in DEMO_SCHEDULE.items()}
COMPARE_WITH = "uegan"               # the published generator, trained beside the practical default
RANDOM_VGG_NOTE = ("No VGG19 ImageNet weights were found, so this demo uses a RANDOM VGG19 for "
                   "the fidelity loss (only the demo does that; the published model and "
                   "`uegan train` use the ImageNet weights).")
METRICS = FULL_REFERENCE   # the keys of :func:`uegan.evaluation.score_pair`


def demo_schedule(variant: str) -> tuple[int, float]:
    """(steps, learning-rate factor) of ``variant`` in the demo: its measured best, or 120 steps
    at the published rates where none was measured."""
    return DEMO_SCHEDULE.get(variant, FALLBACK_SCHEDULE)


@dataclass
class DemoSettings:
    """The reduced model and schedule of the demo (the UEGAN objective is unchanged).

    ``variant`` is trained and shown beside ``compare_with`` (the published ``uegan``; None: only
    ``variant``), both on the same data with the same seed. ``steps`` / ``compare_steps``: None
    takes each variant's own demo step count (:data:`DEMO_SCHEDULE`, which also sets its learning
    rates; ``lr_scale`` multiplies them further).
    """

    variant: str = RECOMMENDED_VARIANT
    compare_with: str | None = COMPARE_WITH
    steps: int | None = None           # training steps of ``variant``
    compare_steps: int | None = None   # training steps of ``compare_with``
    seed: int = 0
    conv_dim: int = 8                  # published: 32
    d_conv_dim: int = 8                # published: 32
    crop_size: int = 96                # published: random crop 512 ...
    image_size: int = 96               # ... resized to 256 (96 is the discriminator's minimum)
    batch_size: int = 2                # published: 10
    lr_scale: float = 1.0              # multiplies each variant's demo learning rates
    low_copies: int = DEFAULT_LOW_COPIES
    held_out_copies: int = DEFAULT_HELD_OUT_COPIES
    vgg_weights: str | None = None     # a VGG19 file; None: the torch hub cache if present
    threads: int | None = None         # torch threads; None: the faster of 1 and all, measured
    progress: bool = True

    def models(self) -> list[tuple[str, int, float]]:
        """(variant, steps, learning-rate factor) of every model the demo trains: the comparison
        first, as on the page."""
        models = []
        if self.compare_with and self.compare_with != self.variant:
            steps, lr = demo_schedule(self.compare_with)
            models.append((self.compare_with, self.compare_steps or steps, lr * self.lr_scale))
        steps, lr = demo_schedule(self.variant)
        models.append((self.variant, self.steps or steps, lr * self.lr_scale))
        return models


Scores = dict[str, float]  # metric name (METRICS) -> value


@dataclass
class ImageRow:
    """One held-out photo: the input's scores and each model's, all against the original."""

    name: str
    degradation: str
    input: Scores
    outputs: dict[str, Scores]         # variant -> scores


@dataclass
class ModelRun:
    variant: str
    steps: int
    lr_scale: float                    # factor on the published learning rates
    train_seconds: float


@dataclass
class DemoResult:
    out: Path
    rows: list[ImageRow]
    models: list[ModelRun]
    threads: int
    total_seconds: float
    vgg: str                           # "imagenet: PATH" or "random"
    settings: DemoSettings

    def mean(self, metric: str, variant: str | None = None) -> float:
        """Mean over the held-out photos of the input's (``variant`` None) or a model's score."""
        return float(np.mean([row.input[metric] if variant is None else row.outputs[variant][metric]
                              for row in self.rows]))

    def improves(self, variant: str) -> dict[str, bool]:
        """Per metric: does ``variant``'s mean beat the inputs' (PSNR, SSIM up; CIEDE2000 down)?"""
        result = {}
        for metric in METRICS:
            before, after = self.mean(metric), self.mean(metric, variant)
            result[metric] = after < before if metric in LOWER_IS_BETTER else after > before
        return result

    @property
    def variant(self) -> str:
        return self.settings.variant


PROTOCOL = ("8-bit RGB, 4-pixel border cropped; PSNR 10 log10(255^2/MSE); SSIM as scikit-image "
            "structural_similarity (7x7 uniform window), mean over channels; CIEDE2000 as "
            "scikit-image deltaE_ciede2000 of rgb2lab (D65), mean over pixels (lower is better)")


def result_dict(result: DemoResult) -> dict:
    variants = [run.variant for run in result.models]
    return {
        "held_out": [asdict(row) for row in result.rows],
        "mean": {"input": {m: result.mean(m) for m in METRICS},
                 **{v: {m: result.mean(m, v) for m in METRICS} for v in variants}},
        "improves": {v: result.improves(v) for v in variants},
        "models": [asdict(run) for run in result.models],
        "variant": result.variant, "threads": result.threads,
        "total_seconds": round(result.total_seconds, 1),
        "vgg": result.vgg, "settings": asdict(result.settings), "protocol": PROTOCOL,
    }
