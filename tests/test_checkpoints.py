"""Generator files in every format, and the VGG19 weights of the fidelity loss."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import uegan

from _malicious import FORMATS, write_malicious
from conftest import GOLDEN, load_golden
from uegan.checkpoints import (TRAIN_FORMAT, build_published, load_generator,
                               load_published_checkpoint, save_generator)
from uegan.cli import main
from uegan.errors import UserError
from uegan.models import Discriminator, Generator, GeneratorConfig
from uegan.models.published import discriminator_to_published, generator_to_published
from uegan.weights import VGG19_FILENAME, build_vgg19, vgg19_cache_path


@pytest.fixture(scope="module")
def golden_generator():
    return load_golden("generator_forward.pt")


def _published_checkpoint(tmp_path, state):
    """A file laid out like the published FiveK checkpoint: G, D, optimisers, bookkeeping."""
    d_state = discriminator_to_published(Discriminator().state_dict())
    path = tmp_path / "published.pth"
    torch.save({"G_net": state, "D_net": d_state,
                "G_optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "D_optimizer": {"state": {}, "param_groups": [{"lr": 4e-4, "params": [0]}]},
                "epoch": 99}, path)
    return path


def _run(generator, inputs):
    with torch.no_grad():
        return generator(inputs)


def test_published_checkpoint_loads_and_reproduces_reference(tmp_path, golden_generator):
    path = _published_checkpoint(tmp_path, golden_generator["state_dict"])
    loaded = load_generator(path)
    assert loaded.source_format == "published"
    assert loaded.generator.config == GeneratorConfig(conv_dim=8)
    out = _run(loaded.generator, golden_generator["input"])
    assert (out - golden_generator["output"]).abs().max().item() <= 1e-5

    both = load_published_checkpoint(path)
    generator, discriminator = build_published(both)
    assert discriminator is not None and discriminator.config.conv_dim == 32
    assert (_run(generator, golden_generator["input"]) - golden_generator["output"]).abs().max() <= 1e-5


def test_bare_published_generator_state_dict_loads(tmp_path, golden_generator):
    path = tmp_path / "G.pth"
    torch.save(golden_generator["state_dict"], path)
    assert load_generator(path).source_format == "published"


def test_export_round_trip_keeps_weights_and_metadata(tmp_path, golden_generator):
    source = load_generator(_published_checkpoint(tmp_path, golden_generator["state_dict"]))
    target = tmp_path / "generator.safetensors"
    save_generator(target, source.generator, "uegan-charbonnier")
    loaded = load_generator(target)
    assert loaded.source_format == "export"
    assert loaded.variant == "uegan-charbonnier"
    assert loaded.generator.config == source.generator.config
    for key, value in source.generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[key], value), key
    from safetensors import safe_open
    with safe_open(str(target), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "uegan-generator"
    assert metadata["format_version"] == "1"
    assert metadata["conv_dim"] == "8"


def test_export_never_overwrites_unless_asked(tmp_path):
    target = tmp_path / "generator.safetensors"
    target.write_bytes(b"precious")
    generator = Generator(GeneratorConfig(conv_dim=8))
    with pytest.raises(UserError, match="already exists"):
        save_generator(target, generator, "uegan")
    assert target.read_bytes() == b"precious"
    save_generator(target, generator, "uegan", overwrite=True)
    assert load_generator(target).variant == "uegan"
    assert [p.name for p in tmp_path.iterdir()] == ["generator.safetensors"]  # no temporaries


def test_se_export_round_trip(tmp_path):
    generator = Generator(GeneratorConfig(conv_dim=8, se_after_ga5=True))
    save_generator(tmp_path / "g.safetensors", generator, "uegan-charbonnier-se")
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.generator.config.se_after_ga5


def test_training_checkpoint_format_is_read(tmp_path):
    generator = Generator(GeneratorConfig(conv_dim=8))
    path = tmp_path / "step_10.pt"
    torch.save({"format": TRAIN_FORMAT, "version": 1, "variant": "uegan",
                "generator_config": generator.config.to_dict(),
                "G": generator.state_dict(), "step": 10}, path)
    loaded = load_generator(path)
    assert loaded.source_format == "train" and loaded.variant == "uegan"


def _loaders():
    """Every loader that reads a ``.pth``, with how the malicious file wraps its payload."""
    from uegan import nima
    from uegan.training.checkpoint import load_checkpoint
    from uegan.weights import build_vgg19, load_vgg19_state

    return {
        "generator": (load_generator, lambda p: {"G_net": p}),
        "bare-generator": (load_generator, lambda p: {"enc1.main.1.weight": p}),
        "published-checkpoint": (load_published_checkpoint, lambda p: {"G_net": p, "D_net": {}}),
        "training-checkpoint": (load_checkpoint, lambda p: {"format": TRAIN_FORMAT, "G": p}),
        "nima": (nima.load_nima, lambda p: {"head.2.weight": p}),
        "vgg19-state": (load_vgg19_state, lambda p: {"features.0.weight": p}),
        "vgg19": (build_vgg19, lambda p: {"features.0.weight": p}),
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("loader", sorted(_loaders()))
def test_no_loader_unpickles_arbitrary_objects(tmp_path, loader, fmt):
    load, wrap = _loaders()[loader]
    marker = tmp_path / "pwned"
    path = write_malicious(tmp_path / "evil.pth", marker, wrap, fmt)
    with pytest.raises(UserError, match="evil.pth"):
        load(path)
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """A loader added later is held to the rule too: every ``torch.load`` call in ``src/uegan``
    passes ``weights_only=True`` (a literal), and nothing calls ``pickle.load(s)``."""
    import ast
    from pathlib import Path

    import uegan

    package = Path(uegan.__file__).parent
    calls = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            name = f"{owner.id}.{node.func.attr}" if isinstance(owner, ast.Name) else node.func.attr
            assert name not in ("pickle.load", "pickle.loads"), f"{source}:{node.lineno}"
            if name == "torch.load":
                flags = [k.value for k in node.keywords if k.arg == "weights_only"]
                assert flags and isinstance(flags[0], ast.Constant) and flags[0].value is True, \
                    f"{source}:{node.lineno}: torch.load without weights_only=True"
                calls.append(f"{source.name}:{node.lineno}")
    assert len(calls) >= 3, calls  # checkpoints.py, nima.py, weights.py at least


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x89PNG\r\n\x1a\n0000"])
def test_garbage_files_are_rejected_clearly(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match="broken.pth"):
        load_generator(path)


def test_missing_and_foreign_checkpoints_are_rejected(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_generator(tmp_path / "nope.pth")
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(UserError, match="not a UEGAN checkpoint"):
        load_generator(other)


def test_wrong_shapes_are_rejected(tmp_path, golden_generator):
    state = dict(golden_generator["state_dict"])
    state["dec2.main.1.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(UserError, match="do not fit"):
        load_generator(_published_checkpoint(tmp_path, state))


# --- VGG19 weights ---------------------------------------------------------------------------

def test_vgg_explicit_path_loads_torchvision_layout(golden_vgg_state):
    vgg = build_vgg19(GOLDEN / "vgg19_random_to_relu5_1.pt")
    for key, value in golden_vgg_state.items():
        assert torch.equal(vgg.state_dict()[key], value), key


def test_vgg_found_in_torch_hub_cache(tmp_path, monkeypatch, golden_vgg_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = vgg19_cache_path()
    assert cache == tmp_path / "hub" / "checkpoints" / VGG19_FILENAME
    cache.parent.mkdir(parents=True)
    full = dict(golden_vgg_state)
    full["classifier.0.weight"] = torch.zeros(1)  # a full torchvision file has more: ignored
    torch.save(full, cache)

    def no_download(*args, **kwargs):
        raise AssertionError("must not download when the cache has the file")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    vgg = build_vgg19()
    assert torch.equal(vgg.state_dict()["features.28.weight"], golden_vgg_state["features.28.weight"])


def test_vgg_offline_and_absent_says_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError) as error:
        build_vgg19()
    message = str(error.value)
    assert VGG19_FILENAME in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "--vgg-weights" in message


def test_vgg_missing_explicit_file_and_wrong_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_vgg19(tmp_path / "vgg.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="torchvision's layout"):
        build_vgg19(wrong)


def test_vgg_random_only_when_asked(caplog):
    with caplog.at_level("WARNING"):
        vgg = build_vgg19("random")
    assert "RANDOM VGG19" in caplog.text
    assert not any(p.requires_grad for p in vgg.parameters())


# --- hostile and broken files ------------------------------------------------------------------

_MEMORY_CHILD = """
import resource, sys
from uegan.checkpoints import load_generator
from uegan.errors import UserError
load_generator(sys.argv[1])  # a valid file first: what loading costs anyway is paid here
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_generator(sys.argv[2])
    print("loaded")
except UserError as error:
    print("UserError:", error)
print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _small_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(conv_dim=8))


def _claiming_conv_dim_256(tmp_path, fmt):
    """A small file (conv_dim 8 tensors) whose configuration claims conv_dim 256, which would
    take over a gigabyte to build."""
    generator = _small_generator()
    claimed = json.dumps({"conv_dim": 256, "se_after_ga5": False})
    if fmt == "safetensors":
        path = tmp_path / "claims-256.safetensors"
        state = {k: v.contiguous() for k, v in generator.state_dict().items()}
        save_file(state, str(path), metadata={"format": "uegan-generator", "format_version": "1",
                                              "variant": "uegan", "conv_dim": "256",
                                              "generator_config": claimed})
    else:
        path = tmp_path / "claims-256.pth"
        torch.save({"format": TRAIN_FORMAT, "variant": "uegan",
                    "generator_config": json.loads(claimed), "G": generator.state_dict()}, path)
    return path


@pytest.mark.parametrize("fmt", ["safetensors", "train"])
def test_claimed_configuration_is_checked_before_anything_is_built(tmp_path, fmt):
    """The stored shapes are checked against the configuration's before the network is built:
    the loader's peak memory does not grow by the gigabyte a conv_dim 256 generator needs."""
    valid = save_generator(tmp_path / "valid.safetensors", _small_generator(), "uegan")
    hostile = _claiming_conv_dim_256(tmp_path, fmt)
    assert hostile.stat().st_size < 2_000_000
    env = dict(os.environ, PYTHONPATH=str(Path(uegan.__file__).parents[1]))
    result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(valid), str(hostile)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    grew_mib = int(next(line for line in lines if line.startswith("grew_kib")).split()[1]) / 1024
    assert grew_mib < 200, f"peak memory grew by {grew_mib:.0f} MiB"
    assert lines[0].startswith("UserError:") and "do not fit" in lines[0] and hostile.name in lines[0]


def test_claimed_configuration_builds_nothing_outside_the_meta_device(tmp_path, monkeypatch):
    hostile = _claiming_conv_dim_256(tmp_path, "safetensors")
    built_on = []
    original = Generator.__init__

    def recording(self, config=GeneratorConfig()):
        built_on.append((config.conv_dim, torch.empty(0).device.type))
        original(self, config)

    monkeypatch.setattr(Generator, "__init__", recording)
    with pytest.raises(UserError, match="do not fit"):
        load_generator(hostile)
    assert built_on and all(device == "meta" for _, device in built_on), built_on


def test_published_shapes_claiming_a_large_generator_build_nothing(tmp_path, monkeypatch):
    """A published state dict whose first convolution alone claims conv_dim 256."""
    state = generator_to_published(_small_generator().state_dict())
    state["enc1.main.1.weight"] = torch.zeros(256, 3, 7, 7)
    state["enc1.main.1.bias"] = torch.zeros(256)
    path = tmp_path / "claims-256.pth"
    torch.save({"G_net": state}, path)
    built_on = []
    original = Generator.__init__

    def recording(self, config=GeneratorConfig()):
        built_on.append(torch.empty(0).device.type)
        original(self, config)

    monkeypatch.setattr(Generator, "__init__", recording)
    for load in (load_generator, load_published_checkpoint):
        with pytest.raises(UserError, match="claims-256.pth: the weights do not fit"):
            load(path)
    assert built_on and set(built_on) == {"meta"}


def _export_with_metadata(tmp_path, **changes):
    state = {k: v.contiguous() for k, v in _small_generator().state_dict().items()}
    metadata = {"format": "uegan-generator", "format_version": "1", "variant": "uegan",
                "conv_dim": "8", "generator_config": json.dumps({"conv_dim": 8})}
    metadata.update(changes)
    metadata = {k: v for k, v in metadata.items() if v is not None}
    path = tmp_path / "bad-metadata.safetensors"
    save_file(state, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("changes", [
    {"generator_config": None},                      # KeyError
    {"generator_config": "{conv_dim: 8"},            # JSONDecodeError
    {"generator_config": "[8]"},                     # not a mapping
    {"generator_config": json.dumps({"conv_dim": 12})},   # ValueError in the config
    {"generator_config": json.dumps({"conv_dim": "8"})},  # TypeError in the config
    {"format_version": "one"},                       # ValueError
], ids=["no-config", "bad-json", "list", "conv-dim-12", "conv-dim-string", "bad-version"])
def test_bad_metadata_is_a_one_line_user_error(tmp_path, changes):
    path = _export_with_metadata(tmp_path, **changes)
    with pytest.raises(UserError, match="bad-metadata.safetensors") as error:
        load_generator(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("keep", [0.5, 0.05, 5])
def test_truncated_safetensors_is_a_one_line_user_error(tmp_path, keep):
    data = save_generator(tmp_path / "g.safetensors", _small_generator(), "uegan").read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(UserError, match="truncated.safetensors: a truncated or corrupt "
                                        "safetensors file") as error:
        load_generator(path)
    assert "\n" not in str(error.value)


def test_folder_given_as_checkpoint(tmp_path):
    with pytest.raises(UserError, match="is a folder, expected a file"):
        load_generator(tmp_path)


def test_device_file_given_as_checkpoint():
    with pytest.raises(UserError, match="/dev/zero is not a regular file"):
        load_generator("/dev/zero")


def test_unreadable_checkpoint_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    path = save_generator(tmp_path / "locked.safetensors", _small_generator(), "uegan")
    if os.geteuid() == 0:  # root reads any file: the operating system's refusal is simulated
        real_open = builtins.open

        def refusing(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing)
    else:
        path.chmod(0)
    code = main(["export", "-c", str(path), "--safetensors", str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "locked.safetensors" in err and "cannot be read" in err
