"""Losses against the tensors made by the published UEGAN code."""

from __future__ import annotations

import pytest
import torch

from conftest import load_golden
from uegan.losses import FidelityLoss, identity_loss, rahinge_d_loss, rahinge_g_loss
from uegan.models import VGG19Features


@pytest.fixture(scope="module")
def golden_vgg() -> VGG19Features:
    vgg = VGG19Features()
    vgg.load_state_dict({k: v.float() for k, v in load_golden("vgg19_random_to_relu5_1.pt").items()})
    return vgg


def test_vgg_features_match_published(golden_vgg):
    ref = load_golden("fidelity_loss.pt")
    features = golden_vgg(ref["x"])
    assert len(features) == len(ref["features_of_x"]) == 5
    for out, (name, expected) in zip(features, ref["features_of_x"].items()):
        assert out.shape == expected.shape, name
        relative = (out - expected).abs().max() / expected.abs().max()
        assert relative <= 1e-5, name


def test_vgg_stops_at_relu5_1():
    vgg = VGG19Features()
    assert len(vgg.features) == 30
    assert max(int(k.split(".")[1]) for k in vgg.state_dict()) == 28


def test_fidelity_loss_matches_published(golden_vgg):
    ref = load_golden("fidelity_loss.pt")
    loss = FidelityLoss(golden_vgg)(ref["x"], ref["y"])
    assert abs(loss.item() - ref["loss"].item()) <= 1e-5 * abs(ref["loss"].item())


def test_fidelity_loss_is_zero_for_identical_images(golden_vgg):
    x = load_golden("fidelity_loss.pt")["x"]
    assert FidelityLoss(golden_vgg)(x, x.clone()).item() == 0.0


def test_relativistic_hinge_losses_match_published():
    ref = load_golden("rahinge_loss.pt")
    d_loss = rahinge_d_loss(ref["real_preds"], ref["fake_preds"])
    g_loss = rahinge_g_loss(ref["real_preds"], ref["fake_preds"])
    assert abs(d_loss.item() - ref["d_loss"].item()) <= 1e-6
    assert abs(g_loss.item() - ref["g_loss"].item()) <= 1e-6


def test_relativistic_hinge_sums_the_scales():
    real = [torch.full((1, 1, 2, 2), 0.5)] * 5
    fake = [torch.full((1, 1, 2, 2), -0.5)] * 5
    # per scale: 0.5 * (relu(1 - 1) + relu(1 - 1)) = 0 for D; 0.5 * (2 + 2) = 2 for G
    assert rahinge_d_loss(real, fake).item() == 0.0
    assert rahinge_g_loss(real, fake).item() == pytest.approx(5 * 2.0)


@pytest.mark.parametrize("case", [0, 1, 2], ids=["far", "close", "within-eps"])
@pytest.mark.parametrize("criterion,key", [("l1", "l1_multiscale"),
                                           ("charbonnier", "charbonnier_multiscale")])
def test_identity_loss_matches_published(case, criterion, key):
    ref = load_golden("identity_loss.pt")["cases"][case]
    loss = identity_loss(ref["pred"], ref["target"], criterion)
    assert abs(loss.item() - ref[key].item()) <= 1e-6


def test_identity_criteria_part_within_eps():
    ref = load_golden("identity_loss.pt")["cases"][2]
    l1 = identity_loss(ref["pred"], ref["target"], "l1").item()
    charbonnier = identity_loss(ref["pred"], ref["target"], "charbonnier").item()
    # Charbonnier is bounded below by eps * (1 + 1/2 + 1/4) where L1 goes to zero
    assert charbonnier >= 1e-3 * 1.75 - 1e-9
    assert charbonnier > 2 * l1


def test_identity_loss_rejects_unknown_criterion():
    with pytest.raises(ValueError, match="charbonnier"):
        identity_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), "l2")  # type: ignore[arg-type]


def test_losses_of_half_precision_maps_are_computed_in_float32():
    # under bf16 autocast the networks hand over bf16 maps; a D loss of about 8 in bf16 would
    # be rounded to steps of 1/16
    gen = torch.Generator().manual_seed(0)
    real = [torch.randn(2, 1, 8, 8, generator=gen) * 3 for _ in range(5)]
    fake = [torch.randn(2, 1, 8, 8, generator=gen) * 3 for _ in range(5)]
    low = [t.bfloat16() for t in real], [t.bfloat16() for t in fake]
    for loss in (rahinge_d_loss, rahinge_g_loss):
        expected = loss([t.float() for t in low[0]], [t.float() for t in low[1]])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = loss(*low)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    pred, target = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)
    for criterion in ("l1", "charbonnier"):
        got = identity_loss(pred.bfloat16(), target.bfloat16(), criterion)
        expected = identity_loss(pred.bfloat16().float(), target.bfloat16().float(), criterion)
        assert got.dtype == torch.float32 and got.item() == pytest.approx(expected.item(), rel=1e-6)
    # float64 stays float64
    assert identity_loss(pred.double(), target.double()).dtype == torch.float64
