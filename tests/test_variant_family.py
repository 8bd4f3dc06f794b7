"""The network family as a whole: every registered variant tiles exactly and round-trips through
an export, and a variant added in one place (a GAM subclass registered in ``GAM_KINDS`` plus a
``VARIANTS`` entry, both made here) works with tiled enhancement, the audit and the exports
without a change anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import uegan
from uegan.apps.audit import audit_generator, build_for_audit, randomize_generic
from uegan.checkpoints import load_generator, save_generator
from uegan.export import export_onnx
from uegan.inference import Enhancer
from uegan.models import tiling
from uegan.models.generator import GAM_KINDS, Generator
from uegan.models.layers import NORM_EPS, GlobalAttentionBase, whole_mask
from uegan.variants import VARIANTS, Variant, get_variant

AUDIT = {"batches": 2, "batch_size": 1, "size": 32}


def _random_generator(name: str, seed: int = 0) -> Generator:
    """Variant ``name`` at conv_dim 8 with every parameter random (zero-initialised ones too,
    so that no part of the network is the identity by accident of its initialisation)."""
    generator = Generator(get_variant(name).generator_config(8))
    randomize_generic(generator, seed)
    return generator.eval()


def _image(seed: int, height: int, width: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=rng) * 2 - 1


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_registered_variant_tiles_exactly(name):
    generator = _random_generator(name)
    x = _image(1, 128, 176)
    with torch.no_grad():
        whole = generator(x)
    assert (tiling.tiled_forward(generator, x, tile=64) - whole).abs().max() <= 1e-5
    assert tiling.tiling_matches(generator)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_registered_variant_round_trips_through_an_export(tmp_path, name):
    generator = _random_generator(name, seed=1)
    path = save_generator(tmp_path / f"{name}.safetensors", generator, name)
    loaded = load_generator(path)
    assert loaded.variant == name and loaded.generator.config == generator.config
    x = _image(2, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.generator(x), generator(x))


# --- a variant added by a test -----------------------------------------------------------------

class ShiftAttention(GlobalAttentionBase):
    """A toy GAM: the channel statistics shift the normalised features,
    ``out = InstanceNorm(W x) + tanh(M [mean, std])``."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.local = nn.Conv2d(channels, channels, 1, bias=False)
        self.mix = nn.Linear(2 * channels, channels, bias=False)

    def local_term(self, x):
        return self.local(x)

    def global_from_moments(self, mean, std):
        return torch.tanh(self.mix(torch.cat([mean, std], dim=1).flatten(1)))

    def modulate(self, normalised, g):
        return normalised + g[:, :, None, None]

    def global_entries(self):
        return {"mix.weight": whole_mask(self.mix.weight)}


class InertShiftAttention(ShiftAttention):
    """The same toy with the published GAM's flaw: the shift is added before the norm."""

    global_branch_inert = True

    def modulate(self, normalised, g):
        return normalised

    def forward(self, x):
        shifted = self.local_term(x) + self.global_vector(x)[:, :, None, None]
        return F.instance_norm(shifted, eps=NORM_EPS)


@pytest.fixture
def toy_variants(monkeypatch):
    """Two variants registered the way a researcher adds one: a GAM kind and a variant entry."""
    monkeypatch.setitem(GAM_KINDS, "toy-shift", ShiftAttention)
    monkeypatch.setitem(GAM_KINDS, "toy-shift-inert", InertShiftAttention)
    for kind in ("toy-shift", "toy-shift-inert"):
        monkeypatch.setitem(VARIANTS, f"uegan-{kind}", Variant(
            f"uegan-{kind}", "charbonnier", False, "a toy GAM", generator_options={"gam": kind}))
    return "uegan-toy-shift", "uegan-toy-shift-inert"


def test_a_new_variant_gets_exact_tiled_enhancement(toy_variants, monkeypatch):
    generator = _random_generator(toy_variants[0], seed=3)
    assert isinstance(generator.ga1, ShiftAttention)
    calls = []
    real = tiling.tiled_forward
    monkeypatch.setattr(tiling, "tiled_forward",
                        lambda g, x, tile=tiling.DEFAULT_TILE: calls.append(x.shape) or real(g, x, tile))
    pixels = np.random.default_rng(4).integers(0, 256, (150, 270, 3), dtype=np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    tiled = Enhancer(generator, full_res=True, tile=64).generate(x)
    assert (1, 3, 160, 272) in calls  # the tiled pass ran on the image, not the fallback
    whole = Enhancer(generator, max_side=None, tile=512).generate(x)
    assert (tiled - whole).abs().max() <= 1e-5
    # the global branch matters: a tiled pass that ignored it would not match
    with torch.no_grad():
        generator.ga2.mix.weight.mul_(-1)
    assert (Enhancer(generator, max_side=None).generate(x) - whole).abs().max() > 1e-3


def test_the_audit_asks_a_new_gam_for_its_global_branch(toy_variants):
    live, inert = toy_variants
    report = audit_generator(*build_for_audit(live, conv_dim=8)[:1], **AUDIT)
    assert report.zero_gradient == [] and report.findings == []
    generator, variant, source = build_for_audit(inert, conv_dim=8)
    report = audit_generator(generator, source=source, variant=variant, **AUDIT)
    gams = [f"ga{k}" for k in range(1, 6)]
    assert {p.name for p in report.zero_gradient} == {f"{g}.mix.weight" for g in gams}
    findings = {f.key: f for f in report.findings}
    assert findings["gam-global-branch-inert"].modules == gams
    assert "unexplained" not in findings


def test_a_new_variant_exports_to_safetensors_and_onnx(toy_variants, tmp_path):
    generator = _random_generator(toy_variants[0], seed=5)
    loaded = load_generator(save_generator(tmp_path / "toy.safetensors", generator, toy_variants[0]))
    assert loaded.variant == toy_variants[0] and isinstance(loaded.generator.ga3, ShiftAttention)
    worst = export_onnx(loaded.generator, tmp_path / "toy.onnx")
    assert worst <= 1e-4 and (tmp_path / "toy.onnx").stat().st_size > 0


def test_no_module_recognises_a_layer_by_its_class_name():
    """Layers are asked (isinstance, their methods), never recognised by a name string: no
    comparison in ``src/uegan`` reads ``__name__`` / ``__qualname__`` or calls ``_get_name()``."""
    def names_a_class(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr in ("__name__", "__qualname__"):
            return True
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "_get_name"

    offenders = []
    for source in sorted(Path(uegan.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                    names_a_class(side) for side in [node.left, *node.comparators]):
                offenders.append(f"{source.name}:{node.lineno}")
    assert offenders == []
