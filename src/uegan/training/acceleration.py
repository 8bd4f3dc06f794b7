"""The names the training speed-ups had before they became fields of
:class:`uegan.training.step.StepOptions`; kept for the benchmarks and other callers."""

from __future__ import annotations

from uegan.training.step import StepOptions, apply_step_options

TrainingAcceleration = StepOptions
accelerate_training = apply_step_options

__all__ = ["TrainingAcceleration", "accelerate_training"]
