"""The study's one variable, guarded: every registered variant's identity criterion, generator
and published figures, and what a training run of a variant really hands to the training step.

The table below is written out by hand from the README ("The project reproduces a study ...",
"Variants that use the idea") and the published study's FiveK figures; it is the reference,
``uegan.variants`` is the code under test. A new variant needs a new row here.
"""

from __future__ import annotations

import pytest
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, tiny_config

from uegan.models.generator import GeneratorConfig
from uegan.training import step as step_module
from uegan.training.trainer import Trainer
from uegan.variants import VARIANTS, get_variant

# name: (identity criterion, generator fields that differ from the published model,
#        published FiveK PSNR / SSIM / NIMA or None)
TABLE = {
    "uegan": ("l1", {}, (22.88, 0.8882, 4.76)),
    "uegan-charbonnier": ("charbonnier", {}, (22.98, 0.8888, 4.96)),
    "uegan-charbonnier-se": ("charbonnier", {"se_after_ga5": True}, (23.99, 0.8991, 5.10)),
    "uegan-charbonnier-half": ("charbonnier", {"ga5_scale": 0.5}, None),
    "uegan-charbonnier-gam-mod": ("charbonnier", {"gam": "modulated"}, None),
    "uegan-charbonnier-se-pre": ("charbonnier", {"se_before_ga5": True}, None),
    "uegan-charbonnier-curve": ("charbonnier", {"curve_knots": 16}, None),
    "uegan-curve": ("charbonnier", {"curve_knots": 16, "local_residual": False}, None),
}

# the published generator, field by field (GeneratorConfig's defaults must stay these)
PUBLISHED_GENERATOR = {"se_after_ga5": False, "gam": "published", "se_before_ga5": False,
                       "ga5_scale": 1.0, "curve_knots": 0, "local_residual": True}


def test_every_registered_variant_has_a_row_and_no_row_is_missing():
    assert sorted(VARIANTS) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_variant_table(name):
    criterion, changes, published = TABLE[name]
    variant = get_variant(name)
    assert variant.name == name
    assert variant.identity_criterion == criterion
    assert variant.published == published
    for conv_dim in (8, 32):
        config = variant.generator_config(conv_dim)
        fields = {key: getattr(config, key) for key in PUBLISHED_GENERATOR}
        assert fields == {**PUBLISHED_GENERATOR, **changes}, name
        assert config.conv_dim == conv_dim


def test_published_generator_defaults():
    config = GeneratorConfig()
    assert config.conv_dim == 32
    assert {key: getattr(config, key) for key in PUBLISHED_GENERATOR} == PUBLISHED_GENERATOR


@pytest.fixture
def recorded_steps(monkeypatch):
    """Every call of the identity loss inside the training step: (criterion, loss value)."""
    calls: list[tuple[str, float, float]] = []
    real = step_module.identity_loss

    def recording(pred, target, criterion="l1"):
        loss = real(pred, target, criterion)
        # the same loss, with the arithmetic written out here (scales 1, 1/2, 1/4; 2x2 means)
        p, t, expected = pred.detach().float(), target.detach().float(), 0.0
        for index, weight in enumerate((1.0, 0.5, 0.25)):
            if index:
                p = torch.nn.functional.avg_pool2d(p, 2)
                t = torch.nn.functional.avg_pool2d(t, 2)
            if criterion == "l1":
                expected += weight * float((p - t).abs().mean())
            else:
                expected += weight * float(torch.sqrt((p - t) ** 2 + 1e-3 ** 2).mean())
        calls.append((criterion, float(loss.detach()), expected))
        return loss

    monkeypatch.setattr(step_module, "identity_loss", recording)
    return calls


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(TABLE))
def test_training_run_hands_the_variants_identity_criterion_to_the_step(tmp_path, recorded_steps,
                                                                        name):
    criterion, changes, _ = TABLE[name]
    trainer = Trainer(tiny_config(tmp_path, steps=2, save_every=2, variant=name),
                      vgg=TinyFeatures())
    expected_generator = GeneratorConfig(conv_dim=8, **changes)
    assert trainer.generator.config == expected_generator
    trainer.fit()
    assert [call[0] for call in recorded_steps] == [criterion, criterion]
    for _, value, expected in recorded_steps:
        assert value == pytest.approx(expected, rel=1e-5, abs=1e-7)
