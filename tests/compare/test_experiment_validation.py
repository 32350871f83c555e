"""A bad experiment file or override: exit 2 with FILE:LINE: key.path, and nothing written."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.resources import DEFAULT_EXPERIMENT
from hwsim.experiments.experiment import load_experiment

TINY = """\
version: 1
name: tiny
dataset: {name: digits, train_size: 300}
network: {model: mlp, depth: 3, width: 16}
quantization: {weight_bits: 8, act_bits: 8, feedback_bits: 4}
training: {epochs: 2, batch_size: 64, optimizer: adam, lr: 0.003}
seeds: [0]
rules: [bp, fa, ifa, "ifa:30"]
chips: [edge_sram]
"""
BROKEN_CHIP = "version: 1\nname: broken\nclock_hz: -5\n"

#: (text replaced, replacement, "LINE: key.path: words" the message must hold)
CASES = [
    ("width: 16", "width: 0", "4: network.width: 0: expected an integer 1..8192"),
    ("depth: 3", "depth: 0", "4: network.depth: 0: expected an integer 2..10"),
    ("model: mlp, depth: 3", "model: cnn, depth: 3", "4: network.depth: 3: expected null"),
    ("feedback_bits: 4", "feedback_bits: 33", "5: quantization.feedback_bits: 33: expected"),
    ("feedback_bits: 4", "feedback_bits: 0", "5: quantization.feedback_bits: 0: expected"),
    ("weight_bits: 8", "weight_bits: 64", "5: quantization.weight_bits: 64: expected"),
    ("act_bits: 8", "act_bits: 1", "5: quantization.act_bits: 1: expected"),
    ("epochs: 2", "epochs: -1", "6: training.epochs: -1: expected"),
    ("epochs: 2", "epochs: 0", "6: training.epochs: 0: expected"),
    ("batch_size: 64", "batch_size: 0", "6: training.batch_size: 0: expected"),
    ("lr: 0.003", "lr: 0", "6: training.lr: 0: expected a finite number > 0"),
    ("lr: 0.003", "lr: .nan", "6: training.lr: nan: expected a finite number > 0"),
    ("lr: 0.003", "lr: -.inf", "6: training.lr: -inf: expected"),
    ("optimizer: adam", "optimizer: rmsprop", "6: training.optimizer: 'rmsprop': expected"),
    ("name: digits", "name: imagenet", "3: dataset.name: 'imagenet': expected one of"),
    ("train_size: 300", "train_size: 5", "3: dataset.train_size: 5: expected"),
    ("seeds: [0]", "seeds: [18446744073709551617]", "7: seeds.0: 18446744073709551617: expect"),
    ("seeds: [0]", "seeds: [-1]", "7: seeds.0: -1: expected"),
    ("seeds: [0]", "seeds: [0, 0]", "7: seeds: a seed is given twice"),
    ("seeds: [0]", "seeds: []", "7: seeds: expected a non-empty list"),
    ('"ifa:30"]', '"ifa:200"]', "8: rules.3: angle in rule 'ifa:200' is outside"),
    ('"ifa:30"]', "7]", "8: rules.3: expected a rule spec"),
    ("rules: [bp, fa, ifa, ", "rules: [bp, bp, ", "8: rules: a rule is given twice"),
    ("chips: [edge_sram]", "chips: [no_such_chip]", "9: chips.0: chip file no_such_chip not"),
    ("chips: [edge_sram]", "chips: [broken.yaml]", "9: chips.0: "),
    ("chips: [edge_sram]", "chips: ['" + "x" * 5000 + "']", "9: chips.0: "),
    ("name: tiny", "name: ../../elsewhere", "2: name: '../../elsewhere': expected"),
    ("version: 1", "version: true", "1: version: unsupported version True"),
    ("network: {", "network: {height: 3, ", "4: network.height: unknown key"),
]


def _compare(*args: str):
    return CliRunner().invoke(main, ["compare", "--quiet", *args])


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_bad_experiment_exits_2_with_file_line_key_and_writes_nothing(tmp_path, old, new, expected):
    assert old in TINY
    (tmp_path / "broken.yaml").write_text(BROKEN_CHIP)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(TINY.replace(old, new, 1))
    out = tmp_path / "D"
    result = _compare("--experiment", str(experiment), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{experiment}:{expected}" in result.output, result.output
    assert not out.exists()


def test_block_style_lines_point_at_the_key(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        TINY.replace(
            "network: {model: mlp, depth: 3, width: 16}",
            "network:\n  model: mlp\n  depth: 3\n  width: 0\n",
        )
    )
    with pytest.raises(InputError, match=rf"{experiment}:7: network\.width: 0: expected"):
        load_experiment(experiment)


def test_all_problems_are_reported_at_once_in_line_order(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(TINY.replace("width: 16", "width: 0").replace("epochs: 2", "epochs: 0"))
    with pytest.raises(InputError) as info:
        load_experiment(experiment)
    message = str(info.value)
    assert message.index(":4: network.width") < message.index(":6: training.epochs")


def test_a_broken_chip_is_named_inside_the_experiment_error(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN_CHIP)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(TINY.replace("[edge_sram]", "[broken.yaml]"))
    with pytest.raises(InputError) as info:
        load_experiment(experiment)
    message = str(info.value)
    assert f"{experiment}:9: chips.0: {tmp_path / 'broken.yaml'}:1: memories" in message
    assert f"\n    {tmp_path / 'broken.yaml'}:3: clock_hz: must be positive" in message


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--epochs", "0"], "--epochs 0: expected an integer 1..100000"),
        (["--epochs", "-5"], "--epochs -5: expected"),
        (["--seed", "-1"], "--seed -1: expected an integer 0..4294967295"),
        (["--seed", str(2**70)], f"--seed {2**70}: expected"),
        (["--dataset", "imagenet"], "--dataset imagenet: expected one of"),
        (["--algo", "bp,ifa:200"], "--algo bp,ifa:200: angle in rule"),
        (["--chip", "broken.yaml"], "--chip broken.yaml: "),
        (["--chip", "no_such_chip"], "--chip no_such_chip: chip file no_such_chip not found"),
    ],
)
def test_bad_overrides_exit_2_and_write_nothing(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text(BROKEN_CHIP)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(TINY)
    out = tmp_path / "D"
    result = _compare("--experiment", str(experiment), "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert words in result.output, result.output
    assert not out.exists()


def test_hostile_experiment_file_exits_2_and_writes_nothing(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(TINY + "extra: &a [*a]\n")
    out = tmp_path / "D"
    result = _compare("--experiment", str(experiment), "--out", str(out))
    assert result.exit_code == 2 and f"{experiment}:10: alias *a" in result.output
    assert not out.exists()


def test_api_construction_and_overrides_validate_too():
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    settings = {**experiment.settings, "network": {"model": "mlp", "depth": 0, "width": 16}}
    with pytest.raises(InputError, match=r"network\.depth: 0: expected"):
        dataclasses.replace(experiment, settings=settings)
    with pytest.raises(InputError, match="seeds: -1: expected"):
        dataclasses.replace(experiment, seeds=(-1,))
    with pytest.raises(InputError, match="rules: expected at least one rule"):
        dataclasses.replace(experiment, rules=())
    with pytest.raises(InputError, match="--epochs 0: expected"):
        experiment.with_overrides(epochs=0)
    assert experiment.with_overrides(epochs=1, seed=3).train_config("fa", 3).epochs == 1
