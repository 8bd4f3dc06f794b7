"""The networks against the tensors made by the published UEGAN code."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import GOLDEN, load_golden
from uegan.models import Discriminator, Generator, GeneratorConfig
from uegan.models.init import init_orthogonal
from uegan.models.published import (discriminator_from_published, discriminator_to_published,
                             generator_from_published, generator_to_published)


def test_generator_matches_published_forward():
    ref = load_golden("generator_forward.pt")
    config, state = generator_from_published(ref["state_dict"])
    assert config == GeneratorConfig(conv_dim=ref["conv_dim"], se_after_ga5=False)
    generator = Generator(config)
    generator.load_state_dict(state)
    with torch.no_grad():
        out = generator.eval()(ref["input"])
    assert out.shape == ref["output"].shape
    assert (out - ref["output"]).abs().max().item() <= 1e-5


@pytest.fixture()
def discriminator_reference():
    ref = load_golden("discriminator_forward.pt")
    config, state = discriminator_from_published(ref["state_dict_initial"])
    assert config.conv_dim == ref["conv_dim"]
    discriminator = Discriminator(config)
    discriminator.load_state_dict(state)
    return ref, discriminator


def _max_error(outputs, references) -> float:
    assert len(outputs) == len(references) == 5
    for out, expected in zip(outputs, references):
        assert out.shape == expected.shape
    return max((o - r).abs().max().item() for o, r in zip(outputs, references))


def test_discriminator_train_mode_power_iterations_match_published(discriminator_reference):
    ref, discriminator = discriminator_reference
    discriminator.train()
    for inputs, expected in zip(ref["train_inputs"], ref["train_outputs"]):
        with torch.no_grad():
            assert _max_error(discriminator(inputs), expected) <= 1e-5
    after = discriminator_to_published(discriminator.state_dict())
    expected_after = ref["state_dict_after_two_train_calls"]
    assert set(after) == set(expected_after)
    for key, value in expected_after.items():
        assert torch.allclose(after[key], value, atol=1e-6), key
    # the vectors did move: two iterations are not a no-op
    initial = ref["state_dict_initial"]
    assert not torch.allclose(initial["d1.0.1.weight_u"], expected_after["d1.0.1.weight_u"])


def test_discriminator_eval_mode_runs_no_power_iteration(discriminator_reference):
    ref, discriminator = discriminator_reference
    discriminator.load_state_dict(discriminator_from_published(ref["state_dict_after_two_train_calls"])[1])
    discriminator.eval()
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    with torch.no_grad():
        assert _max_error(discriminator(ref["eval_input"]), ref["eval_output"]) <= 1e-5
    for key, value in discriminator.state_dict().items():
        assert torch.equal(value, before[key]), key


def _published_shapes(name: str) -> dict[str, list[int]]:
    return json.loads((GOLDEN / name).read_text())["state_dict"]


def _random_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}


def test_every_published_conv32_generator_key_maps_and_back():
    shapes = _published_shapes("generator_official_keys_conv32.json")
    published = _random_state(shapes)
    config, state = generator_from_published(published)
    assert config == GeneratorConfig(conv_dim=32, se_after_ga5=False)
    generator = Generator(config)
    generator.load_state_dict(state)  # strict: every key of the module is covered
    assert sum(p.numel() for p in generator.parameters()) == json.loads(
        (GOLDEN / "generator_official_keys_conv32.json").read_text())["parameters"]
    back = generator_to_published(generator.state_dict())
    assert set(back) == set(shapes)
    for key, value in published.items():
        assert torch.equal(back[key], value), key


def test_every_published_conv32_discriminator_key_maps_and_back():
    shapes = _published_shapes("discriminator_official_keys_conv32.json")
    published = _random_state(shapes)
    config, state = discriminator_from_published(published)
    assert config.conv_dim == 32
    discriminator = Discriminator(config)
    discriminator.load_state_dict(state)
    total = sum(p.numel() for p in discriminator.parameters())  # u, v are buffers
    assert total == json.loads(
        (GOLDEN / "discriminator_official_keys_conv32.json").read_text())["parameters"]
    back = discriminator_to_published(discriminator.state_dict())
    assert set(back) == set(shapes)
    for key, value in published.items():
        assert torch.equal(back[key], value), key


def test_module_prefix_of_parallel_wrappers_is_accepted():
    published = {f"module.{k}": v for k, v in load_golden("generator_forward.pt")["state_dict"].items()}
    config, state = generator_from_published(published)
    Generator(config).load_state_dict(state)


def test_se_variant_adds_exactly_two_bias_free_linear_layers():
    plain = Generator(GeneratorConfig(conv_dim=8))
    with_se = Generator(GeneratorConfig(conv_dim=8, se_after_ga5=True))
    plain_keys, se_keys = set(plain.state_dict()), set(with_se.state_dict())
    assert plain_keys <= se_keys
    added = se_keys - plain_keys
    assert added == {"se.fc1.weight", "se.fc2.weight"}
    c = 16 * 8
    assert with_se.state_dict()["se.fc1.weight"].shape == (c // 4, c)
    assert with_se.state_dict()["se.fc2.weight"].shape == (c, c // 4)
    new_modules = [m for name, m in with_se.named_modules() if name.startswith("se.")]
    assert [type(m) for m in new_modules] == [nn.Linear, nn.Linear]
    assert all(m.bias is None for m in new_modules)
    extra = sum(p.numel() for p in with_se.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * c * (c // 4)


def test_se_variant_is_recognised_from_published_shapes():
    published = generator_to_published(Generator(GeneratorConfig(conv_dim=8, se_after_ga5=True)).state_dict())
    assert {"se.fc.0.weight", "se.fc.2.weight"} <= set(published)
    config, _ = generator_from_published(published)
    assert config == GeneratorConfig(conv_dim=8, se_after_ga5=True)


def test_mismatching_state_dict_is_rejected_with_a_clear_message():
    from uegan.errors import UserError

    published = dict(load_golden("generator_forward.pt")["state_dict"])
    del published["dec3.main.1.bias"]
    published["extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError, match="missing 1 key.*dec3.main.1.bias.*unexpected key.*extra.weight"):
        generator_from_published(published)


def test_generator_needs_multiples_of_16():
    # the published generator needs sides divisible by 16: others fail in the skip concat
    generator = Generator(GeneratorConfig(conv_dim=8)).eval()
    with torch.no_grad():
        assert generator(torch.zeros(1, 3, 32, 48)).shape == (1, 3, 32, 48)
        with pytest.raises(RuntimeError):
            generator(torch.zeros(1, 3, 40, 48))


def test_orthogonal_init_covers_every_weight_with_gain_002():
    discriminator = Discriminator()
    generator = Generator(GeneratorConfig(conv_dim=8, se_after_ga5=True))
    for model in (generator, discriminator):
        init_orthogonal(model)
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                assert torch.count_nonzero(param) == 0, name
            else:
                matrix = param.detach().flatten(1)
                rows, cols = matrix.shape
                gram = matrix @ matrix.t() if rows <= cols else matrix.t() @ matrix
                eye = torch.eye(min(rows, cols)) * 0.02 ** 2
                assert torch.allclose(gram, eye, atol=1e-7), name


@pytest.mark.parametrize("conv_dim", [0, 4, 12])
def test_conv_dim_must_be_a_positive_multiple_of_8(conv_dim):
    with pytest.raises(ValueError, match="multiple of 8"):
        GeneratorConfig(conv_dim=conv_dim)
