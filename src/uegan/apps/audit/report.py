"""The audit's report: what was measured per parameter and module, the findings, and the text
that ``uegan audit`` prints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ParameterAudit:
    name: str
    shape: list[int]
    grad_max: float          # largest accumulated float64 |grad| of an entry
    grad_relative: float     # grad_max / the network's largest accumulated float64 |grad|
    precision_ratio: float   # grad_max / the same in float32: ~1 live, ~1e-9 (or 0) rounding noise
    zero_entries: int        # entries with zero gradient (see the module docstring)
    output_change: float     # max |delta output| when this tensor alone is perturbed

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def zero_gradient(self) -> bool:
        return self.zero_entries == self.numel

    @property
    def partly_zero(self) -> bool:
        return 0 < self.zero_entries < self.numel


@dataclass
class ModuleAudit:
    name: str
    kind: str
    parameters: list[str]
    # max |delta output| when all its own parameters are perturbed together; for a module one of
    # whose parameters alone changes the output, the largest such single-parameter change
    output_change: float


@dataclass
class Finding:
    key: str                 # "gam-global-branch-inert", "se-constant-half", "unexplained"
    modules: list[str]
    text: str


@dataclass
class AuditReport:
    source: str
    variant: str | None
    generator_config: dict[str, Any]
    settings: dict[str, Any]
    parameters: list[ParameterAudit]
    modules: list[ModuleAudit]
    findings: list[Finding] = field(default_factory=list)
    excitations: dict[str, dict[str, float]] = field(default_factory=dict)
    # attention block -> indices of its hidden ReLU units that no audit input activated
    inactive_hidden_units: dict[str, list[int]] = field(default_factory=dict)

    @property
    def zero_gradient(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.zero_gradient]

    @property
    def partly_zero(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.partly_zero]

    @property
    def inert_parameters(self) -> list[ParameterAudit]:
        return [p for p in self.parameters if p.output_change <= self.settings["output_threshold"]]

    @property
    def inert_modules(self) -> list[ModuleAudit]:
        return [m for m in self.modules if m.output_change <= self.settings["output_threshold"]]

    def margins(self) -> dict[str, float | None]:
        """How far apart the flagged and the live values are (the thresholds sit in between)."""
        live_grad = [p.precision_ratio for p in self.parameters if not p.zero_gradient]
        dead_grad = [p.precision_ratio for p in self.parameters if p.zero_gradient]
        threshold = self.settings["output_threshold"]
        live_change = [m.output_change for m in self.modules if m.output_change > threshold]
        dead_change = [m.output_change for m in self.modules if m.output_change <= threshold]
        return {
            "largest_f64_f32_grad_ratio_of_zero_gradient_parameters": max(dead_grad, default=None),
            "smallest_f64_f32_grad_ratio_of_live_parameters": min(live_grad, default=None),
            "largest_output_change_of_inert_modules": max(dead_change, default=None),
            "smallest_output_change_of_live_modules": min(live_change, default=None),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for entry, parameter in zip(data["parameters"], self.parameters):
            entry.update(numel=parameter.numel, zero_gradient=parameter.zero_gradient,
                         inert=parameter.output_change <= self.settings["output_threshold"])
        threshold = self.settings["output_threshold"]
        for entry, module in zip(data["modules"], self.modules):
            entry["inert"] = module.output_change <= threshold
        data["margins"] = self.margins()
        return data

    def format_text(self, show_all: bool = False) -> str:
        return _format_report(self, show_all)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _format_report(report: AuditReport, show_all: bool) -> str:
    s = report.settings
    threshold = s["output_threshold"]
    lines = [f"audit of {report.source}",
             f"generator: {report.generator_config}",
             f"{s['batches']} random batches of {s['batch_size']} x {s['size']}x{s['size']}, float64, "
             f"seed {s['seed']}; zero gradient: float64 |grad| <= {s['grad_ratio']:g} x float32 "
             f"|grad| (rounding noise); no effect: max |delta output| <= "
             f"{threshold:g} when perturbed as {s['perturbation']}",
             ""]
    flagged = [p for p in report.parameters
               if show_all or p.zero_gradient or p.partly_zero or p.output_change <= threshold]
    lines.append(f"parameters: {len(report.parameters)}, with zero gradient: "
                 f"{len(report.zero_gradient)}, partly zero: {len(report.partly_zero)}, "
                 f"perturbation without effect: {len(report.inert_parameters)}")
    if flagged:
        rows = [("parameter", "shape", "rel. max |grad|", "f64/f32", "zero-grad entries",
                 "max |d out|", "verdict")]
        for p in flagged:
            verdict = ("zero gradient" if p.zero_gradient else "partly zero" if p.partly_zero
                       else "live")
            if p.output_change <= threshold:
                verdict += ", no effect"
            rows.append((p.name, "x".join(map(str, p.shape)) or "scalar", f"{p.grad_relative:.1e}",
                         f"{p.precision_ratio:.1e}",
                         f"{p.zero_entries}/{p.numel}", f"{p.output_change:.1e}", verdict))
        lines += _table(rows)
    lines.append("")
    modules = [m for m in report.modules if show_all or m.output_change <= threshold]
    lines.append(f"modules with parameters: {len(report.modules)}, perturbation without effect: "
                 f"{len(report.inert_modules)}")
    if modules:
        rows = [("module", "type", "max |d out|", "verdict")]
        for m in modules:
            rows.append((m.name, m.kind, f"{m.output_change:.1e}",
                         "no effect" if m.output_change <= threshold else "live"))
        lines += _table(rows)
    for name, stats in report.excitations.items():
        lines.append(f"\nSE block {name}: excitation in [{stats['excitation_min']:.9f}, "
                     f"{stats['excitation_max']:.9f}], largest |channel mean| of its input "
                     f"{stats['max_abs_channel_mean']:.1e}")
    margins = report.margins()
    lines.append("\nmargins: " + "; ".join(
        f"{key.replace('f64_f32', 'f64/f32').replace('_', ' ')} {value:.1e}"
        for key, value in margins.items() if value is not None))
    lines.append("")
    if report.findings:
        lines.append("findings:")
        lines += [f"- {finding.text}" for finding in report.findings]
    else:
        lines.append("findings: none: every parameter gets gradient and every module changes the output")
    return "\n".join(lines)
