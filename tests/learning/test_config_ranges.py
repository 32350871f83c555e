"""Training-setting ranges, checked once (hwsim.models.config.config_problems) for the API and
CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.models.config import MAX_SEED, TrainConfig, config_problems

#: (TrainConfig changes, the option's CLI spelling, words of the expectation)
BAD = [
    ({"width": 0}, ["--width", "0"], "1..8192"),
    ({"width": 100_000}, ["--width", "100000"], "1..8192"),
    ({"depth": 0}, ["--depth", "0"], "2..10"),
    ({"depth": 11}, ["--depth", "11"], "2..10"),
    ({"feedback_bits": 33}, ["--feedback-bits", "33"], "1..16"),
    ({"feedback_bits": 0}, ["--feedback-bits", "0"], "1..16"),
    ({"weight_bits": 1}, ["--weight-bits", "1"], "2..16"),
    ({"act_bits": 17}, ["--act-bits", "17"], "2..16"),
    ({"seed": 2**64 + 1}, ["--seed", str(2**64 + 1)], "0..4294967295"),
    ({"seed": -1}, ["--seed", "-1"], "0..4294967295"),
    ({"epochs": 0}, ["--epochs", "0"], "1..100000"),
    ({"epochs": -3}, ["--epochs", "-3"], "1..100000"),
    ({"batch_size": 0}, ["--batch-size", "0"], "1..65536"),
    ({"lr": 0.0}, ["--lr", "0"], "finite number > 0"),
    ({"lr": -1.0}, ["--lr", "-1"], "finite number > 0"),
    ({"lr": float("nan")}, ["--lr", "nan"], "finite number > 0"),
    ({"lr": float("inf")}, ["--lr", "inf"], "finite number > 0"),
    ({"momentum": 1.0}, ["--momentum", "1"], "[0, 1)"),
    ({"forward_gain": 0.0}, ["--forward-gain", "0"], "> 0"),
    ({"backward_gain": float("nan")}, ["--backward-gain", "nan"], "> 0"),
    ({"train_size": 5}, ["--train-size", "5"], "100..50000"),
    ({"model": "cnn", "depth": 3}, ["--model", "cnn", "--depth", "3"], "the cnn has 4"),
]


@pytest.mark.parametrize(("changes", "args", "words"), BAD)
def test_api_refuses_out_of_range_settings(changes, args, words):
    key = next(k for k in changes if k != "model" or len(changes) == 1)
    with pytest.raises(InputError, match=rf"config key '{key}' = .*: expected") as info:
        TrainConfig(**changes)
    assert words in str(info.value)


@pytest.mark.parametrize(("changes", "args", "words"), BAD)
def test_cli_refuses_out_of_range_options_before_writing(tmp_path, changes, args, words):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    option, value = args[-2], args[-1]
    assert f"{option} {value}" in result.output and ": expected" in result.output  # 0 as 0.0
    assert words in result.output
    assert not out.exists()


def test_every_bad_option_is_named_at_once(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--width", "0", "--epochs", "0", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "--width 0: expected" in result.output and "--epochs 0: expected" in result.output


def test_wrong_types_and_edges_through_the_api():
    assert config_problems({"width": True})[0][0] == "width"  # a bool is no int
    assert config_problems({"lr": "0.1"})[0][0] == "lr"
    assert config_problems({"seed": MAX_SEED, "width": 8192, "feedback_bits": 1}) == []
    assert config_problems({"weight_bits": 32, "act_bits": 2, "feedback_bits": None}) == []
    assert TrainConfig(seed=MAX_SEED, lr=1e12).seed == MAX_SEED  # huge lr: allowed, diverges
    with pytest.raises(InputError, match=r"'width' = 0.*'epochs' = 0"):
        TrainConfig(width=0, epochs=0)  # every problem, not the first only
    with pytest.raises(InputError, match=r"^config\.yaml: config key 'depth' = 0"):
        TrainConfig.from_dict({"depth": 0}, source="config.yaml")
