"""``--init-from``: a run that starts from given weights is the run built from scratch whose
networks were then given those weights by hand (fresh optimisers, step 0): same losses from the
first step, same networks and optimisers at the end. For a training checkpoint (G and D), an
export (G only: D from the seed) and a published-format ``.pth`` (G and D, published names)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, tensors_equal, tiny_config

from uegan.checkpoints import save_generator
from uegan.cli import build_parser
from uegan.cli.train import config_from_args
from uegan.errors import UserError
from uegan.models import Discriminator, Generator, GeneratorConfig
from uegan.models.discriminator import DiscriminatorConfig
from uegan.models.published import discriminator_to_published, generator_to_published
from uegan.training.checkpoint import load_checkpoint, newest_checkpoint, step_path
from uegan.training.trainer import Trainer

LOSSES = ("d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss")
COMPARED = ("G", "D", "opt_g", "opt_d", "step", "epoch", "step_in_epoch")


def _train_rows(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [{k: row[k] for k in ("step", *LOSSES)} for row in rows if row["kind"] == "train"]


def _final(run_dir) -> dict:
    checkpoint = load_checkpoint(newest_checkpoint(run_dir))
    return {key: checkpoint[key] for key in COMPARED}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A training checkpoint of another run (other seed, trained 2 steps) and its G exported."""
    tmp = tmp_path_factory.mktemp("source")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = tiny_config(tmp, out="source", steps=2, seed=7)
        Trainer(config, vgg=TinyFeatures()).fit()
    finally:
        torch.set_num_threads(before)
    checkpoint = step_path(config.out, 2)
    data = torch.load(checkpoint, weights_only=True)
    export = tmp / "source.safetensors"
    generator = Generator(GeneratorConfig(conv_dim=8))
    generator.load_state_dict(data["G"])
    save_generator(export, generator, "uegan")
    return {"checkpoint": checkpoint, "export": export, "G": data["G"], "D": data["D"]}


def _fine_tune_and_reference(tmp_path, init_from, g_state, d_state, steps=2):
    """(a) a run with --init-from; (b) the same run from scratch given the weights by hand.
    Returns both trainers (after fit) and what (a) held before its first step."""
    config = tiny_config(tmp_path, out="fine", steps=steps, init_from=str(init_from))
    fine = Trainer(config, vgg=TinyFeatures())
    before = {"step": fine.step, "G": fine.generator.state_dict(),
              "D": fine.discriminator.state_dict(), "opt_g": fine.opt_g.state_dict()["state"],
              "opt_d": fine.opt_d.state_dict()["state"]}
    before = {k: ({n: t.clone() for n, t in v.items()} if k in ("G", "D") else v)
              for k, v in before.items()}
    fine.fit()

    reference = Trainer(replace(config, out=str(tmp_path / "reference"), init_from=None),
                        vgg=TinyFeatures())
    scratch_d = {n: t.clone() for n, t in reference.discriminator.state_dict().items()}
    reference.generator.load_state_dict(g_state)
    if d_state is not None:
        reference.discriminator.load_state_dict(d_state)
    reference.fit()
    return before, scratch_d, config


@pytest.mark.usefixtures("one_thread")
def test_init_from_a_training_checkpoint_is_a_fresh_run_from_its_weights(tmp_path, source):
    before, _, config = _fine_tune_and_reference(tmp_path, source["checkpoint"], source["G"],
                                                 source["D"])
    assert before["step"] == 0 and before["opt_g"] == {} and before["opt_d"] == {}
    assert tensors_equal(before["G"], source["G"]) == []
    assert tensors_equal(before["D"], source["D"]) == []
    fine, reference = tmp_path / "fine", tmp_path / "reference"
    rows = _train_rows(fine)
    assert [row["step"] for row in rows] == [1, 2]   # the step count starts at 0
    assert rows == _train_rows(reference)            # first-step losses equal, and the second
    assert tensors_equal(_final(fine), _final(reference)) == []
    # the source run's optimiser state and step were not taken
    assert _final(fine)["step"] == 2 and load_checkpoint(source["checkpoint"])["step"] == 2
    assert json.loads((fine / "config.json").read_text())["init_from"] == config.init_from


@pytest.mark.usefixtures("one_thread")
def test_init_from_an_export_loads_g_and_draws_d_from_the_seed(tmp_path, source):
    before, scratch_d, _ = _fine_tune_and_reference(tmp_path, source["export"], source["G"], None)
    assert tensors_equal(before["G"], source["G"]) == []
    assert tensors_equal(before["D"], scratch_d) == []       # D as in a run from scratch
    assert tensors_equal(before["D"], source["D"]) != []
    fine, reference = tmp_path / "fine", tmp_path / "reference"
    assert _train_rows(fine) == _train_rows(reference)
    assert tensors_equal(_final(fine), _final(reference)) == []


@pytest.mark.usefixtures("one_thread")
def test_init_from_a_published_checkpoint_maps_the_published_names(tmp_path):
    torch.manual_seed(11)  # random weights in the published layout (default initialisation)
    generator = Generator(GeneratorConfig(conv_dim=8))
    discriminator = Discriminator(DiscriminatorConfig(conv_dim=8))
    path = tmp_path / "UEGAN_FiveK.pth"
    torch.save({"G_net": generator_to_published(generator.state_dict()),
                "D_net": discriminator_to_published(discriminator.state_dict()), "epoch": 99,
                "g_optimizer": {"state": {}, "param_groups": []}}, path)
    before, _, _ = _fine_tune_and_reference(tmp_path, path, generator.state_dict(),
                                            discriminator.state_dict(), steps=1)
    assert tensors_equal(before["G"], generator.state_dict()) == []
    assert tensors_equal(before["D"], discriminator.state_dict()) == []
    assert _train_rows(tmp_path / "fine") == _train_rows(tmp_path / "reference")


@pytest.mark.usefixtures("one_thread")
def test_the_loaded_weights_are_named_in_the_log(tmp_path, source, caplog):
    with caplog.at_level(logging.INFO, logger="uegan"):
        Trainer(tiny_config(tmp_path, out="a", init_from=str(source["checkpoint"])),
                vgg=TinyFeatures())
        Trainer(tiny_config(tmp_path, out="b", init_from=str(source["export"])), vgg=TinyFeatures())
    messages = [r.getMessage() for r in caplog.records if "started from" in r.getMessage()]
    assert len(messages) == 2
    assert "(train file): G and D loaded" in messages[0]
    assert "(export file): G only loaded" in messages[1] and "seed 3" in messages[1]


def test_another_generator_is_refused_naming_both(tmp_path, source):
    curve = tmp_path / "curve.safetensors"
    save_generator(curve, Generator(GeneratorConfig(conv_dim=8, curve_knots=16,
                                                    local_residual=False)), "uegan-curve")
    with pytest.raises(UserError, match=r"'uegan-curve' generator with conv_dim 8, but this run "
                                        r"trains 'uegan' with conv_dim 8"):
        Trainer(tiny_config(tmp_path, out="a", init_from=str(curve)), vgg=TinyFeatures())
    with pytest.raises(UserError, match="conv_dim 8, but this run trains 'uegan' with conv_dim 16"):
        Trainer(tiny_config(tmp_path, out="b", conv_dim=16, init_from=str(source["export"])),
                vgg=TinyFeatures())
    with pytest.raises(UserError, match="discriminator with conv_dim 8, but this run's "
                                        "d_conv_dim is 16: pass --set d_conv_dim=8"):
        Trainer(tiny_config(tmp_path, out="c", d_conv_dim=16,
                            init_from=str(source["checkpoint"])), vgg=TinyFeatures())
    with pytest.raises(UserError, match="does not exist"):
        Trainer(tiny_config(tmp_path, out="d", init_from=str(tmp_path / "missing.pth")),
                vgg=TinyFeatures())


def test_the_same_generator_under_another_variant_name_fine_tunes(tmp_path, source, caplog):
    """uegan and uegan-charbonnier share the generator: a uegan export fine-tunes as either."""
    with caplog.at_level(logging.INFO, logger="uegan"):
        trainer = Trainer(tiny_config(tmp_path, variant="uegan-charbonnier",
                                      init_from=str(source["export"])), vgg=TinyFeatures())
    assert tensors_equal(trainer.generator.state_dict(), source["G"]) == []
    assert any("was trained as uegan; uegan-charbonnier has the same generator" in r.getMessage()
               for r in caplog.records)


@pytest.mark.usefixtures("one_thread")
def test_resume_wins_over_init_from(tmp_path, source, caplog):
    config = tiny_config(tmp_path, steps=2, init_from=str(source["checkpoint"]))
    Trainer(config, vgg=TinyFeatures()).fit()
    run_g = load_checkpoint(step_path(config.out, 2))["G"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uegan"):
        resumed = Trainer(replace(config, steps=3, resume=True), vgg=TinyFeatures())
    assert resumed.step == 2
    assert tensors_equal(resumed.generator.state_dict(), run_g) == []
    assert tensors_equal(run_g, source["G"]) != []   # the run's own weights, not the file's
    assert any("--init-from" in r.getMessage() and "not used: resuming from" in r.getMessage()
               for r in caplog.records)
    assert not any("started from" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("command", ["train", "study"])
def test_the_flag_reaches_the_configuration(tmp_path, command):
    args = ["--low", "l", "--high", "h", "--init-from", "UEGAN_FiveK.pth"]
    if command == "train":
        parsed = build_parser().parse_args(["train", *args, "--out", str(tmp_path / "run")])
        assert config_from_args(parsed).init_from == "UEGAN_FiveK.pth"
    else:
        from uegan.apps.study import TRAIN_FLAGS
        parsed = build_parser().parse_args(["study", "--variants", "uegan", "--seeds", "1", "--out", "s",
                                             *args])
        assert "init_from" in TRAIN_FLAGS and parsed.init_from == "UEGAN_FiveK.pth"
