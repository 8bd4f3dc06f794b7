"""``uegan audit``: it finds the known inert parts, and only those, and works on any generator.

The expected sets are written out here from the spec's "Findings", not taken from the audit.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_golden
from uegan.apps.audit import audit_generator, build_for_audit
from uegan.cli import main
from uegan.variants import VARIANTS, Variant

FAST = {"batches": 2, "batch_size": 1, "size": 32}
GAMS = [f"ga{k}" for k in range(1, 6)]


def _audit(name: str, **kwargs):
    generator, variant, source = build_for_audit(name, conv_dim=8, seed=0)
    return audit_generator(generator, source=source, variant=variant, **{**FAST, **kwargs})


@pytest.fixture(scope="module")
def se_report():
    return _audit("uegan-charbonnier-se")


def test_audit_finds_exactly_the_published_inert_parameters(se_report):
    expected = {f"{g}.{part}" for g in GAMS for part in ("reduce.weight", "expand.weight", "fuse.bias")}
    expected |= {"se.fc1.weight", "se.fc2.weight"}
    assert {p.name for p in se_report.zero_gradient} == expected
    assert {p.name for p in se_report.inert_parameters} == expected
    assert {m.name for m in se_report.inert_modules} == \
        {f"{g}.{part}" for g in GAMS for part in ("reduce", "expand")} | {"se.fc1", "se.fc2"}
    by_name = {p.name: p for p in se_report.parameters}
    for g in GAMS:  # the global half of fuse: exactly half of its entries
        fuse = by_name[f"{g}.fuse.weight"]
        assert fuse.zero_entries == fuse.numel // 2
    margins = se_report.margins()
    assert margins["largest_f64_f32_grad_ratio_of_zero_gradient_parameters"] < 1e-6
    assert margins["smallest_f64_f32_grad_ratio_of_live_parameters"] > 0.1


def test_audit_names_the_two_known_findings(se_report):
    keys = {f.key: f for f in se_report.findings}
    assert keys["gam-global-branch-inert"].modules == GAMS
    assert keys["se-constant-half"].modules == ["se"]
    assert abs(se_report.excitations["se"]["excitation_min"] - 0.5) < 1e-12
    assert abs(se_report.excitations["se"]["excitation_max"] - 0.5) < 1e-12
    assert "unexplained" not in keys


def test_modulated_gam_variant_has_no_inert_part():
    report = _audit("uegan-charbonnier-gam-mod")
    assert report.zero_gradient == [] and report.partly_zero == []
    assert report.inert_parameters == [] and report.inert_modules == []
    assert report.findings == []


def test_se_before_ga5_is_live_while_the_published_gams_stay_inert():
    report = _audit("uegan-charbonnier-se-pre")
    keys = {f.key for f in report.findings}
    assert "gam-global-branch-inert" in keys and "se-constant-half" not in keys
    live = {p.name for p in report.parameters if not p.zero_gradient}
    assert {"se_pre.fc1.weight", "se_pre.fc2.weight"} <= live
    stats = report.excitations["se_pre"]
    assert stats["excitation_max"] - stats["excitation_min"] > 1e-3


def test_audit_reports_a_dead_parameter_it_has_never_heard_of():
    class Tiny(nn.Module):
        """A researcher's network: a bias right before an InstanceNorm does nothing."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.mix = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return x + 0.1 * self.mix(F.instance_norm(self.conv(x)))

    report = audit_generator(Tiny(), **FAST)
    assert [p.name for p in report.zero_gradient] == ["conv.bias"]
    assert [f.key for f in report.findings] == ["unexplained"]
    assert report.findings[0].modules == ["conv.bias"]


def test_audit_works_on_a_variant_added_by_a_researcher(monkeypatch):
    # SE after a *modulated* GAM: the GAM's shift gives its output channel means, so SE lives
    monkeypatch.setitem(VARIANTS, "my-se-after-mod", Variant(
        "my-se-after-mod", "charbonnier", True, "test", generator_options={"gam": "modulated"}))
    report = _audit("my-se-after-mod")
    assert report.zero_gradient == [] and report.inert_modules == []
    assert report.excitations["se"]["excitation_max"] - report.excitations["se"]["excitation_min"] > 1e-3


def test_cli_audits_a_published_checkpoint_and_writes_json(tmp_path, capsys):
    checkpoint = tmp_path / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, checkpoint)
    out_json = tmp_path / "audit.json"
    assert main(["audit", "-c", str(checkpoint), "--size", "32", "--batches", "1", "--batch-size", "1",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "GAM global branch inert in ga1, ga2, ga3, ga4, ga5" in text
    data = json.loads(out_json.read_text())
    assert data["findings"][0]["key"] == "gam-global-branch-inert"
    assert data["source"].startswith(f"checkpoint {checkpoint}")
    # the JSON is not overwritten unless asked (refused before the audit runs)
    assert main(["audit", "-c", str(checkpoint), "--json", str(out_json)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_rejects_what_is_neither_a_variant_nor_a_file(capsys):
    assert main(["audit", "--variant", "no-such-variant"]) == 2
    assert "unknown variant" in capsys.readouterr().err
    assert main(["audit", "-c", "missing/generator.pth"]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert main(["audit"]) == 2
    assert "give --variant NAME" in capsys.readouterr().err
    # the positional form of earlier versions still works, with a warning
    assert main(["audit", "missing/generator.pth"]) == 2
    err = capsys.readouterr().err
    assert "no such checkpoint file" in err and "give the target as --variant" in err
