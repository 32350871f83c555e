"""One set of defaults, shown one way: every training command takes its defaults from the
built-in default experiment (configs/experiments/default.yaml), and every ``--help`` writes a
default as ``[default: X]``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.defaults import default_settings
from hwsim.core.resources import DEFAULT_EXPERIMENT
from hwsim.experiments.experiment import default_train_config, load_experiment

#: Option of ``hwsim train`` / ``hwsim sweep`` → the TrainConfig field whose default it shows.
TRAIN_OPTIONS = {
    "dataset": "dataset",
    "arch": "model",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "schedule": "schedule",
    "weight_bits": "weight_bits",
    "act_bits": "act_bits",
    "forward_gain": "forward_gain",
    "backward_gain": "backward_gain",
    "train_size": "train_size",
    "data_dir": "data_dir",
}
SWEEP_OPTIONS = {
    "dataset": "dataset",
    "epochs": "epochs",
    "depth": "depth",
    "width": "width",
    "batch_size": "batch_size",
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum": "momentum",
    "weight_bits": "weight_bits",
    "act_bits": "act_bits",
}


def _params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params if p.name}


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # click wraps the help: compare words


def _comparable(config: Any) -> dict[str, Any]:
    """A TrainConfig as a dict, with B's width as trained (null = the weights' width)."""
    values = config.to_dict()
    values["feedback_bits"] = config.effective_feedback_bits
    return values


def test_the_default_experiment_is_valid_and_read_without_torch():
    """The torch-free reader agrees with the validating loader on every training setting."""
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    settings = default_settings()
    assert settings["seeds"] == experiment.seeds
    loaded = experiment.train_config("bp", experiment.seeds[0])
    assert default_train_config().to_dict() == loaded.to_dict()
    # `--feedback-bits` defaults to the weights' width: right only while the file agrees.
    assert settings["feedback_bits"] in (None, settings["weight_bits"])


def test_train_options_default_to_the_default_experiment():
    params = _params(main.commands["train"])
    settings = default_settings()
    for name, field in TRAIN_OPTIONS.items():
        assert params[name].default == settings[field], name
    assert params["seed"].default == settings["seeds"][0]
    text = _help("train")
    for name in ("epochs", "batch_size", "lr", "weight_bits", "act_bits", "optimizer", "dataset"):
        assert f"[default: {settings[TRAIN_OPTIONS[name]]}]" in text, name
    assert f"[default: {settings['depth']};" in text and f"[default: {settings['width']} " in text


def test_sweep_options_default_to_the_default_experiment():
    params = _params(main.commands["sweep"])
    settings = default_settings()
    for name, field in SWEEP_OPTIONS.items():
        assert params[name].default == settings[field], name
    assert params["seeds"].default == ",".join(map(str, settings["seeds"]))
    text = _help("sweep")
    assert f"[default: {settings['epochs']}]" in text
    assert f"[default: {settings['weight_bits']}]" in text


class _StopError(Exception):
    """Raised by a stand-in for the training: the command built what it would run."""


def test_hwsim_train_builds_the_default_experiments_run(monkeypatch, tmp_path: Path):
    import hwsim.models.training

    built: list[Any] = []

    def capture(config: Any, *args: Any, **kwargs: Any) -> None:
        built.append(config)
        raise _StopError

    monkeypatch.setattr(hwsim.models.training, "train", capture)
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "r"), "--quiet"])
    assert isinstance(result.exception, _StopError), result.output
    assert _comparable(built[0]) == _comparable(default_train_config())
    assert built[0].depth == 6 and built[0].weight_bits == 8  # the documented values


def test_hwsim_train_cnn_keeps_its_own_shape(monkeypatch, tmp_path: Path):
    """The experiment's depth and width are the MLP's; a cnn keeps its own (4 layers)."""
    import hwsim.models.training

    built: list[Any] = []

    def capture(config: Any, *args: Any, **kwargs: Any) -> None:
        built.append(config)
        raise _StopError

    monkeypatch.setattr(hwsim.models.training, "train", capture)
    out = str(tmp_path / "r")
    result = CliRunner().invoke(main, ["train", "--model", "cnn", "--out", out, "--quiet"])
    assert isinstance(result.exception, _StopError), result.output
    assert built[0].model == "cnn" and built[0].depth is None and built[0].width is None


def test_hwsim_sweep_builds_the_default_experiments_base(monkeypatch, tmp_path: Path):
    import hwsim.experiments.sweeps

    specs: list[Any] = []

    def capture(spec: Any, *args: Any, **kwargs: Any) -> None:
        specs.append(spec)
        raise _StopError

    monkeypatch.setattr(hwsim.experiments.sweeps, "run_sweep", capture)
    out = str(tmp_path / "s")  # one angle: few points to build (each point's network is built)
    result = CliRunner().invoke(main, ["sweep", "angle", "--angles", "0", "--out", out, "--quiet"])
    assert isinstance(result.exception, _StopError), result.output
    spec = specs[0]
    assert _comparable(spec.base) == _comparable(default_train_config(snapshots=False))
    assert spec.seeds == default_settings()["seeds"]


def test_an_experiment_file_fills_its_gaps_from_the_default_experiment(tmp_path: Path):
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("version: 1\ndataset: {name: digits}\nquantization: {weight_bits: 32}\n")
    config = load_experiment(minimal).train_config("bp", 0)
    expected = default_train_config(dataset="digits", weight_bits=32, feedback_bits=None)
    assert config == expected  # B follows the weights' 32 bits, not the default's 8
    cnn = tmp_path / "cnn.yaml"
    cnn.write_text("version: 1\nnetwork: {model: cnn}\n")
    config = load_experiment(cnn).train_config("bp", 0)
    assert (config.model, config.depth, config.width) == ("cnn", None, None)
    assert config.epochs == default_settings()["epochs"]


def test_reproduce_plans_are_the_default_experiment_in_float():
    from hwsim.experiments.reproduce import plan_for

    float_default = default_train_config(
        weight_bits=32, act_bits=32, feedback_bits=None, snapshots=False
    )
    assert plan_for("small").base == float_default
    assert plan_for("full").base == float_default.replace(dataset="mnist", epochs=20)


# ------------------------------------------------------------------ the notation of defaults

#: A default written any other way than ``[default: X]``.
OTHER_NOTATIONS = (
    re.compile(r"\(defaults?\b", re.I),  # (default: X), (default X), (defaults: …)
    re.compile(r"(?<!\[)\bdefaults?:", re.I),  # default: X without the bracket
    re.compile(r"\bdefaults? (is|are|to)\b", re.I),  # prose: "defaults to X"
)
#: Bracketed text at the end of a help that is not ``[default: …]``: a default in another
#: notation (``[1000]``). Checked on the commands whose options this branch owns.
BARE_BRACKET = re.compile(r"\[(?!default: )[^\]]*\]\.?$")
#: Commands (or ``sweep``'s training options) whose help texts this branch writes.
OWNED = {"train", "simulate", "analyze", "reproduce", "chip"}


def _commands(group: click.Group = main, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found += _commands(command, path + " ")
    return found


def _own_options(path: str, command: click.Command) -> list[click.Option]:
    """The options whose help this branch writes: sweep's training options, and the owned
    commands' options except the executor options that reproduce shares with sweep."""
    from hwsim.cli.sweep import EXECUTOR_OPTIONS

    options = [p for p in command.params if isinstance(p, click.Option)]
    shared = {"executor", "workers", "address", "retries"} if EXECUTOR_OPTIONS else set()
    if path == "sweep":
        return [p for p in options if p.name in {*SWEEP_OPTIONS, "seeds"}]
    if path.split()[0] in OWNED:
        return [p for p in options if p.name not in shared]
    return []


@pytest.mark.parametrize(("path", "command"), _commands(), ids=[p for p, _ in _commands()])
def test_every_help_writes_defaults_one_way(path: str, command: click.Command):
    problems = []
    texts = [(p.name, getattr(p, "help", None) or "") for p in command.params]
    texts.append(("(command)", command.help or ""))
    for name, text in texts:
        problems += [f"{name}: {text!r}" for rx in OTHER_NOTATIONS if rx.search(text)]
    for option in _own_options(path, command):
        if option.help and BARE_BRACKET.search(option.help.strip()):
            problems.append(f"--{option.name}: {option.help!r}: write [default: X]")
    assert not problems, f"hwsim {path}:\n" + "\n".join(problems)


def test_the_notation_check_catches_other_notations():
    """The scan above is not vacuous: each notation it refuses is recognised."""
    for text in ("Chip (default: edge_sram).", "Seed, default: 0.", "(defaults: 64)"):
        assert any(rx.search(text) for rx in OTHER_NOTATIONS), text
    assert BARE_BRACKET.search("Probes [100].")
    for text in ("Probes [default: 100].", "Torch threads [default: torch's own]."):
        assert not any(rx.search(text) for rx in OTHER_NOTATIONS)
        assert not BARE_BRACKET.search(text)
