"""Every option a message names exists on the command that can show it.

Messages such as "pass --data-dir DIR", "pass --force to overwrite it" or "choose another
--out" are found by reading every string literal of ``hwsim/`` and ``models/`` (docstrings
aside). A string that names its command (``hwsim analyze hessian --at-loss``) is checked on
that command; any other is checked on every command that can reach its module, per
:data:`RAISED_BY` (derived from where each module's messages are raised; a new module with such
a message must be added there, or the test fails).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from hwsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
NAMED = re.compile(r"\bhwsim ([a-z]+)(?: ([a-z]+))?")
TRAINING = {"train", "compare", "sweep", "reproduce"}
#: module → the commands whose work can raise its messages (each CLI module: its own command).
#: Modules that declare shared options (``device_option``, ``threads_option``…): each option
#: they name must exist on at least one command (the ones that use the helper).
SHARED_OPTIONS = {"hwsim/cli/common.py"}
RAISED_BY: dict[str, set[str]] = {
    # claim_out_dir: every command that writes an --out directory
    "hwsim/core/files.py": TRAINING,
    # parse_rules: every --algo
    "hwsim/core/rules.py": {"train", "compare", "sweep", "simulate"},
    "hwsim/experiments/executors.py": {"sweep", "reproduce"},
    "hwsim/experiments/experiment.py": {"compare"},  # with_overrides: compare's options
    "hwsim/experiments/compare.py": {"compare"},  # the compare run's guard
    "hwsim/core/runs.py": TRAINING,  # a damaged run directory, from every training run
    "hwsim/experiments/sweeps.py": {"sweep"},
    "hwsim/cli/sweep_chip.py": {"sweep"},  # hwsim sweep chip's own checks
    "hwsim/experiments/chip_sweep.py": {"sweep"},
    # extends: and --set, read by every command that loads a chip with overrides
    "hwsim/sim/chip_document.py": {"simulate", "compare", "report", "sweep"},
    # a sized level's derived key given too: "… or --set, removes an inherited value …"
    "hwsim/sim/memories.py": {"simulate", "compare", "report", "sweep"},
    "hwsim/sim/chip_copy.py": {"chip init"},
    # load_dataset: every command that trains, and analyze (it loads the run's data again)
    "models/data.py": {*TRAINING, "analyze"},
    "models/device.py": {*TRAINING, "analyze"},
    "models/training.py": TRAINING,  # resume and thread messages, from every training run
}
#: (module, option) whose message names another command's option: where it is used.
USED_ON = {
    # hwsim chip init: "use it with: --chip mine.yaml"
    ("hwsim/cli/chip.py", "--chip"): {"simulate", "compare"},
}
#: (module, option, command) that does not hold yet, with why; strict: fixed means remove it.
KNOWN_MISSING = {}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _mentions() -> list[tuple[str, int, str, str]]:
    """``(module, line, text, option)`` for every option named in a string literal; ``text``
    is the literal up to the option (a command named there is the option's command)."""
    found = []
    for path in sorted([*ROOT.glob("hwsim/**/*.py"), *ROOT.glob("models/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        module = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in skip:
                    continue
                for match in OPTION.finditer(node.value):
                    before = node.value[: match.start()]
                    found.append((module, node.lineno, before, match[0]))
    return found


MENTIONS = _mentions()


def _command(path: str) -> click.Command:
    command: click.Command = main
    for name in path.split():
        assert isinstance(command, click.Group), path
        command = command.commands[name]
    return command


def _options(path: str) -> set[str]:
    command = _command(path)
    names = {"--help"}
    for p in command.params:
        names.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("--"))
    if isinstance(command, click.Group):
        for sub in command.commands:
            names |= _options(f"{path} {sub}")
    return names


def _commands_of(module: str, text: str) -> set[str]:
    """The commands an option named after ``text`` belongs to: the last command ``text`` names
    (``… train them with `hwsim compare` (--out …``), else those of its module."""
    named = ([None, *NAMED.finditer(text)])[-1]
    if named and named[1] in main.commands:
        sub = named[2]
        group = main.commands[named[1]]
        if sub and isinstance(group, click.Group) and sub in group.commands:
            return {f"{named[1]} {sub}"}
        return {named[1]}
    if module in RAISED_BY:
        return RAISED_BY[module]
    name = Path(module).stem
    return {name} if module.startswith("hwsim/cli/") and name in main.commands else set()


def test_shared_options_are_used():
    every = set().union(*(_options(name) for name in main.commands))
    unused = [
        f"{module}:{line} {option}"
        for module, line, _, option in MENTIONS
        if module in SHARED_OPTIONS and option not in every
    ]
    assert not unused, unused


def _checks() -> list[object]:
    params = {}
    for module, line, text, option in MENTIONS:
        if module in SHARED_OPTIONS:
            continue  # test_shared_options_are_used
        for command in sorted(USED_ON.get((module, option)) or _commands_of(module, text)):
            key = (module, option, command)
            if key in params:
                continue
            marks = []
            if key in KNOWN_MISSING:  # strict: once it holds, remove it from KNOWN_MISSING
                marks = [pytest.mark.xfail(reason=KNOWN_MISSING[key], strict=True)]
            params[key] = pytest.param(
                module, line, option, command, id=f"{command}:{option}:{module}", marks=marks
            )
    return list(params.values())


@pytest.mark.parametrize(("module", "line", "option", "command"), _checks())
def test_the_suggested_option_exists(module: str, line: int, option: str, command: str):
    assert option in _options(command), f"{module}:{line} names {option}; hwsim {command} lacks it"


def test_every_module_with_such_a_message_is_classified():
    unclassified = sorted(
        {
            f"{module}:{line}"
            for module, line, text, _ in MENTIONS
            if not _commands_of(module, text)
            and module not in {*SHARED_OPTIONS, "hwsim/cli/__init__.py"}
        }
    )
    assert not unclassified, "add these modules to RAISED_BY: " + ", ".join(unclassified)


def test_the_scan_finds_the_messages():
    found = {(module, option) for module, _, _, option in MENTIONS}
    assert ("hwsim/core/files.py", "--force") in found
    assert ("models/data.py", "--data-dir") in found
    assert ("hwsim/sim/chip_copy.py", "--force") in found
    assert _commands_of("hwsim/render/reproduction.py", "`hwsim analyze hessian --at-loss`") == {
        "analyze"
    }
    assert "--no-curvature" in _options("sweep") and "--from" in _options("chip")
