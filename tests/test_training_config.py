"""Training configuration: published defaults, presets, overrides, command-line flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uegan.cli import build_parser
from uegan.cli.train import config_from_args
from uegan.errors import UserError
from uegan.training.config import (TrainConfig, apply_values, load_config, parse_set_options,
                                   resolve_train_config)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# the published FiveK settings, written out from the spec ("One training step", "Data")
PUBLISHED = dict(conv_dim=32, d_conv_dim=32, init_gain=0.02, crop_size=512, image_size=256,
                 hflip=True, vflip=True, batch_size=10, epochs=100, g_lr=1e-4,
                 d_lr=4e-4, beta1=0.5, beta2=0.999, weight_decay=1e-4, adv_weight=0.1,
                 fidelity_weight=1.0, identity_weight=0.1, adversarial_input=True, pool_size=50,
                 val_start_epoch=8, val_every=2, precision="fp32")


def test_defaults_are_the_published_settings():
    config = TrainConfig()
    assert {name: getattr(config, name) for name in PUBLISHED} == PUBLISHED
    assert config.variant == "uegan"
    assert config.decay_length == 50  # constant for 50 epochs, then linear to zero at 100
    assert TrainConfig(epochs=10).decay_length == 5


@pytest.mark.parametrize("variant", ["uegan", "uegan-charbonnier", "uegan-charbonnier-se", "uegan-curve"])
def test_variant_presets(variant):
    config = load_config(CONFIGS / f"{variant}.yaml")
    assert config.variant == variant and config.decay_length == 50
    assert {name: getattr(config, name) for name in PUBLISHED} == PUBLISHED


def test_smoke_preset():
    config = load_config(CONFIGS / "smoke.yaml")
    assert (config.conv_dim, config.image_size, config.batch_size, config.steps) == (8, 128, 2, 20)


def test_precedence_preset_flags_set(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("batch_size: 4\nseed: 9\ncrop_size: 300\n")
    config = load_config(preset, {"seed": 11}, {"seed": 12, "crop_size": "320"})
    assert (config.batch_size, config.seed, config.crop_size) == (4, 12, 320)


def test_set_values_are_typed():
    values = parse_set_options(["hflip=false", "g_lr=2e-4", "steps=none", "variant=uegan-charbonnier",
                                "epochs=7"])
    config = apply_values(TrainConfig(), values, "--set")
    assert config.hflip is False and config.g_lr == 2e-4 and config.steps is None
    assert config.variant == "uegan-charbonnier" and config.epochs == 7


@pytest.mark.parametrize("values, message", [
    ({"batch_sise": 2}, "did you mean batch_size"),
    ({"epochs": "many"}, "epochs must be a int"),
    ({"hflip": "maybe"}, "hflip must be a bool"),
    ({"image_size": 100}, "multiple of 16"),
    ({"image_size": 64}, "at least 96"),
    ({"variant": "nope"}, "unknown variant"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"val_low": "x"}, "both --val-low and --val-label"),
])
def test_bad_values_name_the_setting(values, message):
    with pytest.raises(UserError, match=message):
        load_config(None, values)


def test_bad_preset_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(listing)
    with pytest.raises(UserError, match="--set 'oops'"):
        parse_set_options(["oops"])


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_cli_flags_become_the_config(tmp_path):
    args = _args("--config", str(CONFIGS / "smoke.yaml"), "--low", "L", "--high", "H", "--out",
                 str(tmp_path / "r"), "--variant", "uegan-charbonnier-se", "--epochs", "3",
                 "--steps", "5", "--save-every", "2", "--device", "cpu", "--seed", "4",
                 "--precision", "bf16", "--vgg-weights", "random", "--set", "pool_size=7",
                 "--val-low", "VL", "--val-label", "VB", "--skip-bad-images")
    config = config_from_args(args)
    assert (config.variant, config.epochs, config.steps, config.save_every, config.device,
            config.seed, config.precision, config.vgg_weights, config.pool_size) == (
        "uegan-charbonnier-se", 3, 5, 2, "cpu", 4, "bf16", "random", 7)
    assert (config.low, config.high, config.val_low, config.val_label) == ("L", "H", "VL", "VB")
    assert config.skip_bad_images and config.conv_dim == 8 and not config.resume


def test_cli_needs_the_folders():
    with pytest.raises(UserError, match="--low, --high, --out"):
        config_from_args(_args())


def test_resume_starts_from_the_saved_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = TrainConfig(low="L", high="H", out=str(run), batch_size=3, conv_dim=16, seed=8)
    (run / "config.json").write_text(json.dumps(saved.to_dict()))
    config = resolve_train_config(None, {"out": str(run), "resume": True, "steps": 50})
    assert (config.batch_size, config.conv_dim, config.seed, config.steps, config.resume) == (
        3, 16, 8, 50, True)
    with pytest.raises(UserError, match="cannot change it"):
        resolve_train_config(None, {"out": str(run), "resume": True}, {"conv_dim": 8})
