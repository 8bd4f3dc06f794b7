"""Weights people can start from: the model card beside every export, pretrained folders
(model.safetensors + config.json + README.md) and ``Enhancer.from_pretrained`` on a local
folder, a run folder and a Hugging Face Hub id (offline, from a hub cache laid out here), and
``torch.hub.load`` on this clone."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import huggingface_hub.constants  # the test extra: missing, these tests fail, not skip
import pytest
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, make_pairs, tiny_config

import uegan
from conftest import REPO
from uegan.checkpoints import load_generator, save_generator
from uegan.cli import main
from uegan.errors import UserError
from uegan.inference import Enhancer
from uegan.model_card import ModelCard
from uegan.models import Generator, GeneratorConfig
from uegan.pretrained import save_pretrained
from uegan.training.trainer import Trainer

FILES = ["README.md", "config.json", "model.safetensors"]


@pytest.fixture
def generator():
    torch.manual_seed(5)
    return Generator(GeneratorConfig(conv_dim=8, se_after_ga5=True)).eval()


@pytest.fixture
def card():
    return ModelCard(source="a test", steps=1234, epochs=5,
                     data={"low": "photos/lq", "high": "photos/hq", "low_images": 40,
                           "high_images": 30},
                     validation={"psnr": 21.5, "ssim": 0.85, "ciede2000": 9.5, "epoch": 5,
                                 "step": 1200})


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return a.state_dict().keys() == b.state_dict().keys() and all(
        torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_from_pretrained_round_trip_with_the_card(tmp_path, generator, card):
    folder = tmp_path / "uegan-test"
    save_pretrained(folder, generator, "uegan-charbonnier-se", card)
    assert sorted(p.name for p in folder.iterdir()) == FILES
    config = json.loads((folder / "config.json").read_text())
    assert config["variant"] == "uegan-charbonnier-se"
    assert config["generator_config"] == {"conv_dim": 8, "se_after_ga5": True}

    enhancer = Enhancer.from_pretrained(folder, max_side=None)
    assert _same_weights(enhancer.generator, generator)
    assert enhancer.variant == "uegan-charbonnier-se" and enhancer.max_side is None
    assert enhancer.card == (folder / "README.md").read_text()
    assert enhancer.card_facts == replace(card, variant="uegan-charbonnier-se",
                                          uegan_version=uegan.__version__)
    text = enhancer.card
    assert text.startswith("---\nlibrary_name: uegan\n")
    for fact in ("# UEGAN generator `uegan-charbonnier-se`", "| optimiser steps | 1234 |",
                 "| epochs completed | 5 |", "`photos/lq` (40 images)", "`photos/hq` (30 images)",
                 "(epoch 5, step 1200): PSNR 21.50 dB, SSIM 0.8500, CIEDE2000 9.50",
                 "4 pixels cropped from every border", "https://data.csail.mit.edu/graphics/fivek/",
                 "research use only", "Intended use"):
        assert fact in text, fact
    # the facts travel in the weights file too: a re-export keeps them
    assert load_generator(folder / "model.safetensors").card.steps == 1234


def test_a_card_without_facts_says_not_recorded(tmp_path, generator):
    save_pretrained(tmp_path / "bare", generator, None, ModelCard())
    text = (tmp_path / "bare" / "README.md").read_text()
    assert "| optimiser steps | not recorded |" in text
    assert "No validation figures are recorded" in text


def test_pretrained_folders_are_never_overwritten_unless_asked(tmp_path, generator, card):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    with pytest.raises(UserError, match="already holds README.md"):
        save_pretrained(folder, generator, "uegan", card)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md"]
    assert (folder / "README.md").read_text() == "my notes"
    save_pretrained(folder, generator, "uegan", card, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == FILES


def test_a_config_that_does_not_describe_the_weights_is_refused(tmp_path, generator, card):
    save_pretrained(tmp_path / "f", generator, "uegan-charbonnier-se", card)
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    config["variant"] = "uegan-curve"
    (tmp_path / "f" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="does not describe the weights beside it"):
        Enhancer.from_pretrained(tmp_path / "f")


def test_missing_paths_and_folders_without_weights_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        Enhancer.from_pretrained(tmp_path / "nothing.pth")
    with pytest.raises(UserError, match="holds no model.safetensors"):
        Enhancer.from_pretrained(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(UserError, match=r"needs huggingface_hub: pip install 'uegan\[hub\]'"):
        Enhancer.from_pretrained("owner/not-here")


def _fake_hub_cache(tmp_path, monkeypatch, folder):
    """The Hugging Face cache layout holding ``folder`` as repo owner/uegan-test, offline."""
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--owner--uegan-test"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_a_hub_id_loads_from_the_hub_cache_offline(tmp_path, monkeypatch, generator, card):
    save_pretrained(tmp_path / "export", generator, "uegan-charbonnier-se", card)
    snapshot = _fake_hub_cache(tmp_path, monkeypatch, tmp_path / "export")
    monkeypatch.chdir(tmp_path)  # no local folder called owner/uegan-test
    enhancer = Enhancer.from_pretrained("owner/uegan-test")
    assert _same_weights(enhancer.generator, generator)
    assert enhancer.card == (snapshot / "README.md").read_text()
    assert enhancer.card_facts.steps == 1234
    with pytest.raises(UserError, match="owner/other: not a local file or folder, and not "
                                        "available from the Hugging Face Hub"):
        Enhancer.from_pretrained("owner/other")


def test_export_command_writes_cards_and_the_folder(tmp_path, generator, card, capsys):
    source = save_generator(tmp_path / "source.safetensors", generator, "uegan-charbonnier-se",
                            card=card)
    target, folder = tmp_path / "g.safetensors", tmp_path / "folder"
    assert main(["export", "-c", str(source), "--safetensors", str(target), "--folder", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == FILES
    beside = (tmp_path / "g.safetensors.md").read_text()
    assert "| optimiser steps | 1234 |" in beside and "--checkpoint g.safetensors" in beside
    assert "| optimiser steps | 1234 |" in (folder / "README.md").read_text()
    assert _same_weights(Enhancer.from_pretrained(folder).generator, generator)
    # nothing is replaced unless asked, the card included
    target.unlink()
    assert main(["export", "-c", str(source), "--safetensors", str(target)]) == 2
    assert "g.safetensors.md already exists" in capsys.readouterr().err
    assert not target.exists()
    assert main(["export", "-c", str(source), "--folder", str(folder)]) == 2
    assert main(["export", "-c", str(source), "--folder", str(folder), "--overwrite"]) == 0


def test_a_published_checkpoint_export_says_what_is_not_recorded(tmp_path, generator):
    from uegan.models.published import generator_to_published
    path = tmp_path / "UEGAN_FiveK.pth"
    torch.save({"G_net": generator_to_published(generator.state_dict()), "epoch": 99}, path)
    assert main(["export", "-c", str(path), "--folder", str(tmp_path / "f")]) == 0
    text = (tmp_path / "f" / "README.md").read_text()
    assert f"published-format checkpoint {path} (epoch 99)" in text
    assert "| low-quality photos (inputs) | not recorded |" in text


@pytest.mark.usefixtures("one_thread")
def test_a_training_run_writes_the_card_beside_its_generator(tmp_path):
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 2, seed=6)
    config = tiny_config(tmp_path, steps=2, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"))
    Trainer(config, vgg=TinyFeatures()).fit()
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [row for row in rows if row["kind"] == "val"][-1]
    for name in ("generator.safetensors.md", "generator_best.safetensors.md"):
        text = (run / name).read_text()
        for fact in ("# UEGAN generator `uegan`", "| optimiser steps | 2 |",
                     f"`{config.low}` (5 images)", f"`{config.high}` (4 images)", "(2 pairs)",
                     f"PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f}, "
                     f"CIEDE2000 {val['ciede2000']:.2f}", "| started from | random initialisation |"):
            assert fact in text, (name, fact)
    enhancer = Enhancer.from_pretrained(run)  # a run folder: its final generator and card
    assert enhancer.card == (run / "generator.safetensors.md").read_text()
    assert _same_weights(enhancer.generator, load_generator(run / "generator.safetensors").generator)


def test_torch_hub_loads_this_clone_with_local_weights(tmp_path, generator, card):
    save_pretrained(tmp_path / "weights", generator, "uegan-charbonnier-se", card)
    enhancer = torch.hub.load(str(REPO), "enhancer", source="local", path=tmp_path / "weights",
                              max_side=None)
    assert isinstance(enhancer, Enhancer) and _same_weights(enhancer.generator, generator)
    bare = torch.hub.load(str(REPO), "generator", source="local", path=tmp_path / "weights")
    assert _same_weights(bare, generator) and not bare.training
    with pytest.raises(UserError, match="local weights only"):
        torch.hub.load(str(REPO), "enhancer", source="local", path="owner/uegan-test")
