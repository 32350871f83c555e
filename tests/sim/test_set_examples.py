"""Every ``--set`` example a command's help gives names keys of the chip it names: the example
loads onto that chip with :func:`hwsim.sim.chip.load_chip`'s overrides, as the command would."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import (
    CHIPS_DIR,
    DEFAULT_CHIP,
    DEFAULT_COMPARE_CHIP,
    shipped_chip_names,
)
from hwsim.sim.chip import load_chip

#: ``KEY.PATH=VALUE`` in prose: a dotted key of a chip section, a value up to a space or ``;``.
EXAMPLE = re.compile(r"\b((?:memories|placement|training|compute|interconnect)\.[\w.]+)=([^\s;]+)")
COMMANDS = [["simulate"], ["compare"], ["report"], ["sweep"]]


def set_help(path: list[str]) -> str:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    (option,) = [p for p in command.params if "--set" in getattr(p, "opts", ())]
    assert isinstance(option, click.Option) and option.help
    return option.help


def first_value(value: str) -> str:
    """A sweep's ``V1,V2,…`` gives its first value; a single value is itself."""
    return value.rstrip(".,").split(",")[0]


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_set_example_in_help_loads_on_the_chip_it_names(path):
    text = set_help(path)
    chips = [c for c in shipped_chip_names() if re.search(rf"\b{c}\b", text)]
    examples = EXAMPLE.findall(text)
    assert chips and examples, text
    shown = " ".join(CliRunner().invoke(main, [*path, "--help"], terminal_width=400).output.split())
    for key, value in examples:
        assert f"{key}={value}" in shown  # what --help prints
        for chip in chips:
            load_chip(CHIPS_DIR / f"{chip}.yaml", overrides=[f"{key}={first_value(value)}"])


def test_each_command_names_its_own_default_chip():
    assert re.search(rf"\bon {DEFAULT_CHIP.stem}\b", set_help(["simulate"]))
    for path in (["compare"], ["report"]):
        assert re.search(rf"\bon {DEFAULT_COMPARE_CHIP.stem}\b", set_help(path))


def test_compares_documented_example_runs_on_its_default_chip():
    """The example of compare's help, on compare's default chip: the key is the chip's own."""
    chip = load_chip(DEFAULT_COMPARE_CHIP, overrides=["memories.fwd_weight_sram.read_energy_pj=2"])
    assert chip.memory("fwd_weight_sram").read_energy_pj == 2
    from hwsim.core.errors import InputError

    with pytest.raises(InputError, match="no 'weight_sram'"):
        load_chip(DEFAULT_COMPARE_CHIP, overrides=["memories.weight_sram.read_energy_pj=2"])
