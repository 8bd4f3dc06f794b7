"""Find the parts of a generator that do nothing: zero gradients and perturbations without effect.

``audit_generator`` runs a few random batches through a generator (in float64, so that "exactly
zero up to rounding" and "small" are many orders of magnitude apart) and measures

- **gradients**: for each batch, a random-direction loss ``sum(G(x) * r)`` (r ~ N(0, 1)) is
  back-propagated, once in float64 and once in float32, and ``|grad|`` accumulated per entry. A
  gradient that is zero up to rounding (a sum that cancels exactly, as behind an InstanceNorm) is
  rounding noise, about 1e9 times smaller in float64 than in float32; a real gradient, however
  small, is the same in both. So an entry counts as having zero gradient when its float64 value
  is at most ``grad_ratio`` (default 1e-4) times its float32 value, or exactly zero. Where the
  ratio lies between 1e-4 and 0.1 (a float32 rounding residue can itself cancel by accident) or
  float32 gives exactly zero, the entry counts as zero only if its float64 value is at most 1e-12
  times the network's largest. A ratio of 0.1 or more (the precisions agree) is always live:
  the test does not depend on the gradient's scale, which varies by orders of magnitude with
  depth (under the published gain-0.02 init, live gradients can be tiny). A
  parameter is *zero-gradient* when all its entries are, *partly zero* when some are.
- **perturbations**: each parameter tensor, and each module's own parameters together, are
  replaced by ``-3 p + s n`` (n ~ N(0, 1), s = rms(p), or 0.1 where p is all zero), and the
  largest ``|G'(x) - G(x)|`` on the first batch is measured; at most ``output_threshold``
  (default 1e-9, outputs are in [-1, 1]) counts as *no effect*.

Known findings of the published model (spec, "Findings") are recognised by structure, not by
variant name, so the audit works on any variant or checkpoint:

- a published GAM (``GlobalAttention``) whose global branch (``reduce``, ``expand``, the global
  half of ``fuse.weight``, ``fuse.bias``) has zero gradient: cancelled by the InstanceNorm;
- a squeeze-and-excitation block whose weights have zero gradient and whose excitation is 0.5 for
  every channel: a constant factor 0.5 (its input has zero channel means).

Everything else that is flagged is listed as not explained by a known finding.

Modules: :mod:`~uegan.apps.audit.measure` (building what to audit and measuring it),
:mod:`~uegan.apps.audit.findings` (recognising the known findings),
:mod:`~uegan.apps.audit.report` (the report and its text form).
"""

from __future__ import annotations

from uegan.apps.audit.measure import (AGREEMENT, GRAD_FLOOR, GRAD_RATIO, INITS, OUTPUT_THRESHOLD,
                                      audit_generator, build_for_audit, random_images,
                                      randomize_generic)
from uegan.apps.audit.report import AuditReport, Finding, ModuleAudit, ParameterAudit

__all__ = ["AGREEMENT", "AuditReport", "Finding", "GRAD_FLOOR", "GRAD_RATIO", "INITS",
           "ModuleAudit", "OUTPUT_THRESHOLD", "ParameterAudit", "audit_generator",
           "build_for_audit", "random_images", "randomize_generic"]
