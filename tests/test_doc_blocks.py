"""Everything README.md and docs/*.md show runs, or at least parses.

The rules, block by block (every fenced block names its language: ``python``, ``bash``,
``yaml`` or ``text``):

- ``python`` blocks are executed as written, each in an empty temporary directory with the
  repository root on ``sys.path`` (a block that would take minutes is made cheaper in the
  docs, never here).
- ``bash`` blocks: every ``hwsim …`` command (also after ``&&`` or ``;``) is resolved through
  click's own parser (``make_context``), so an unknown option, a missing argument or a bad
  value fails. The cheap commands, :data:`CHEAP` (``simulate``, ``chip``, ``report``: seconds),
  then run in order in a fresh temporary directory per block; the others (``train``,
  ``compare``, ``sweep``, ``reproduce``, ``analyze``: minutes) are only parsed, except that a
  block's ``hwsim compare`` is stood in for by a tiny real compare run copied to its output
  directory, so that the cheap commands after it (``report``, ``simulate --workload``) have
  their input. A ``text`` block right after a runnable ``bash`` block is the output of that
  block's last command at 80 columns, compared line by line.
- ``yaml`` blocks are chip files: each must load and validate (``load_chip``), ``extends:``
  and all.
- ``text`` blocks that start with ``hwsim CMD`` are synopses: each ``--option`` in them must be
  an option of CMD. The same holds for inline ``hwsim …`` code spans in the prose; a span
  without synopsis marks (``[``, ``|``, ``<``, ``…``) is a command line and is parsed like a
  ``bash`` one, upper-case placeholders (``NAME``, ``DIR``, ``L``) standing for a valid value.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hwsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LANGUAGES = {"python", "bash", "text", "yaml"}
#: Commands that take seconds: run, not only parsed (the group ``chip`` with every subcommand).
CHEAP = {"simulate", "chip", "report"}
#: Shell operators that separate commands on one line.
SEPARATORS = {"&&", "||", ";", "|"}
#: An upper-case placeholder in a command line: ``NAME``, ``RUN_DIR``, ``HOST:PORT``, ``L``.
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_:]*")
#: Marks of a synopsis rather than a command line.
SYNOPSIS = re.compile(r"[\[\]|<>…]|\.\.\.|/(?!\S*\.)")
#: The tiny compare run that stands in for a block's ``hwsim compare`` (seconds to train).
STAND_IN_EXPERIMENT = """\
version: 1
name: doc-blocks
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 2, width: 16}
quantization: {weight_bits: 8, act_bits: 8, feedback_bits: 8}
training: {epochs: 1, batch_size: 100}
seeds: [0]
rules: [bp, fa, ifa]
chips: [edge_sram]
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    doc: str
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(str(doc.relative_to(ROOT)), line, match[1], match[2]))
    return found


BLOCKS = _blocks()


def _of(language: str) -> list[Block]:
    return [b for b in BLOCKS if b.language == language]


def _inline_spans() -> list[tuple[str, str]]:
    """``(doc, span)`` for every inline code span that starts with ``hwsim ``."""
    spans = []
    for doc in DOCS:
        prose = FENCE.sub("", doc.read_text(encoding="utf-8")).replace("\n", " ")
        name = str(doc.relative_to(ROOT))
        spans += [(name, " ".join(m[1].split())) for m in re.finditer(r"`(hwsim [^`]+)`", prose)]
    return sorted(set(spans))


def hwsim_commands(code: str) -> list[list[str]]:
    """The argument lists of every ``hwsim`` command in a shell snippet (after ``hwsim``)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        segment: list[str] = []
        for word in [*words, ";"]:
            if word in SEPARATORS:
                if segment and segment[0] == "hwsim":
                    commands.append(segment[1:])
                segment = []
            else:
                segment.append(word)
    return commands


def _sample(param: click.Parameter | None, token: str) -> str:
    """A valid value for an upper-case placeholder of ``param``; any other token unchanged."""
    if param is None or not PLACEHOLDER.fullmatch(token):
        return token
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        low = getattr(kind, "min", None)
        return str(low if low is not None and low > 1 else 1)
    return token


def _with_samples(command: click.Command, args: list[str]) -> list[str]:
    """``args`` with each placeholder replaced by a valid value for its option or argument."""
    options = {
        opt: p
        for p in command.params
        if isinstance(p, click.Option)
        for opt in (*p.opts, *p.secondary_opts)
    }
    positional = [p for p in command.params if isinstance(p, click.Argument)]
    out: list[str] = []
    index = 0
    at = 0
    while index < len(args):
        token = args[index]
        if token.startswith("-") and token != "-":
            option = options.get(token.split("=", 1)[0])
            out.append(token)
            takes_value = option is not None and not option.is_flag and option.count is False
            if takes_value and "=" not in token and index + 1 < len(args):
                out.append(_sample(option, args[index + 1]))
                index += 1
        else:
            param = positional[at] if at < len(positional) else None
            if param is not None and param.nargs != -1:
                at += 1
            out.append(_sample(param, token))
        index += 1
    return out


def resolve(args: list[str]) -> tuple[list[str], click.Context]:
    """Parse ``hwsim ARGS`` as click does: ``(command path, context)``; a usage error (unknown
    command or option, missing or bad value) raises :class:`click.UsageError`."""
    group: click.Command = main
    ctx = click.Context(main, info_name="hwsim")
    path: list[str] = []
    rest = list(args)
    while isinstance(group, click.Group):
        if not rest:
            raise click.UsageError(f"hwsim {' '.join(path)}: no subcommand", ctx)
        sub = group.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"no such command {' '.join([*path, rest[0]])!r}", ctx)
        path.append(rest.pop(0))
        group = sub
        if isinstance(group, click.Group):
            ctx = click.Context(group, info_name=path[-1], parent=ctx)
    rest = _with_samples(group, rest)
    return path, group.make_context(path[-1], rest, parent=ctx)


def _command_options(path: list[str]) -> set[str]:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    names = {"--help", "-h"}
    for p in command.params:
        names.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("-"))
    if isinstance(command, click.Group):  # `hwsim chip …`: the subcommands' options too
        for sub in command.commands:
            names |= _command_options([*path, sub])
    return names


def _synopsis_problems(text: str) -> list[str]:
    """Options a synopsis ``hwsim CMD [--opt …]`` names that CMD does not have."""
    words = text.split()
    if len(words) < 2 or words[0] != "hwsim":
        return []
    path = [words[1]] if words[1] in main.commands else []
    if not path:
        return [f"{text!r}: no command {words[1]!r}"]
    if isinstance(main.commands[path[0]], click.Group) and len(words) > 2:
        sub = words[2]
        if sub in main.commands[path[0]].commands:  # type: ignore[attr-defined]
            path.append(sub)
    known = _command_options(path)
    named = re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*(?:/--[\w-]+)?", text)
    options = {o for word in named for o in word.split("/")}
    return [f"{text[:60]!r}: hwsim {' '.join(path)} has no {o}" for o in sorted(options - known)]


# --------------------------------------------------------------------------------- the blocks


def test_every_block_names_its_language():
    unnamed = [b.name for b in BLOCKS if b.language not in LANGUAGES]
    assert not unnamed, f"fences without python/bash/text: {unnamed}"
    assert _of("python") and _of("bash")


def _python_param(block: Block) -> object:
    """A block that trains whole runs (``train(``: tens of seconds) is marked slow."""
    marks = [pytest.mark.slow] if re.search(r"(?<![\w.])train\(", block.code) else []
    return pytest.param(block, id=block.name, marks=marks)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "yaml"], ids=lambda b: b.name)
def test_yaml_block_is_a_valid_chip(block: Block, tmp_path: Path):
    from hwsim.sim.chip import load_chip

    path = tmp_path / "shown.yaml"
    path.write_text(block.code)
    chip = load_chip(path)
    assert chip.name and chip.memories


@pytest.mark.parametrize("block", [_python_param(b) for b in _of("python")])
def test_python_block_runs_as_written(block: Block, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + block.code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stderr[-3000:]}"


COMMAND_LINES = [
    (f"{b.name}#{i}", args)
    for b in _of("bash")
    for i, args in enumerate(hwsim_commands(b.code), start=1)
]


@pytest.mark.parametrize(("where", "args"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_bash_command_parses(where: str, args: list[str]):
    try:
        resolve(args)
    except click.UsageError as exc:
        pytest.fail(f"{where}: hwsim {shlex.join(args)}: {exc.format_message()}")


SPANS = _inline_spans()
COMMAND_SPANS = [(doc, span) for doc, span in SPANS if not SYNOPSIS.search(span)]


def _is_mention(args: list[str]) -> bool:
    """``hwsim train``, ``hwsim chip list``: the name of a command, not a command line."""
    command: click.Command = main
    for word in args:
        if not isinstance(command, click.Group) or word not in command.commands:
            return False
        command = command.commands[word]
    return True


@pytest.mark.parametrize(("doc", "span"), COMMAND_SPANS, ids=[s for _, s in COMMAND_SPANS])
def test_inline_command_parses(doc: str, span: str):
    """A span naming a command must name one; any other span is parsed as a command line."""
    args = shlex.split(span)[1:]
    if _is_mention(args) and args:
        return
    try:
        resolve(args)
    except click.UsageError as exc:
        pytest.fail(f"{doc}: `{span}`: {exc.format_message()}")


def test_synopses_name_existing_options():
    texts = [(doc, span) for doc, span in SPANS]
    texts += [(b.name, " ".join(b.code.split())) for b in _of("text")]
    problems = [f"{where}: {p}" for where, text in texts for p in _synopsis_problems(text)]
    assert not problems, "\n".join(problems)
    assert any(span.startswith("hwsim sweep angle|depth") for _, span in texts)


def test_the_parser_check_is_not_vacuous():
    with pytest.raises(click.UsageError):
        resolve(["simulate", "--no-such-option"])
    with pytest.raises(click.UsageError):
        resolve(["train"])  # --out is required
    with pytest.raises(click.UsageError):
        resolve(["analyze", "hessian", "RUN_DIR", "--at-loss", "low"])
    assert resolve(["analyze", "hessian", "RUN_DIR", "--at-loss", "L"])[0] == ["analyze"]
    assert _synopsis_problems("hwsim compare [--data-dirt DIR]")
    assert hwsim_commands("pip install x && hwsim chip list  # note") == [["chip", "list"]]


# ---------------------------------------------------------------------- runnable bash blocks


def _runnable(block: Block) -> bool:
    commands = hwsim_commands(block.code)
    return any(c and c[0] in CHEAP for c in commands)


RUNNABLE = [b for b in _of("bash") if _runnable(b)]


def _expected_output(block: Block) -> str | None:
    """The ``text`` block right after ``block`` in its document, if there is one."""
    following = [b for b in BLOCKS if b.doc == block.doc and b.line > block.line]
    if not following or following[0].language != "text":
        return None
    text = (ROOT / block.doc).read_text(encoding="utf-8")
    closing = block.line + block.code.count("\n")  # 0-based index of the closing fence
    between = text.split("\n")[closing + 1 : following[0].line - 1]
    return following[0].code if not "".join(between).strip() else None


@pytest.fixture(scope="module")
def stand_in_compare_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real compare run, tiny (digits, 200 samples, one epoch): the stand-in for a block's
    ``hwsim compare``."""
    from hwsim.experiments.compare import run_compare
    from hwsim.experiments.experiment import load_experiment
    from hwsim.render.report import write_report

    base = tmp_path_factory.mktemp("stand-in")
    (base / "experiment.yaml").write_text(STAND_IN_EXPERIMENT)
    out = base / "run"
    run_compare(load_experiment(base / "experiment.yaml"), out, workers=1)
    write_report(out)
    return out


def _compare_out(ctx: click.Context) -> Path:
    from hwsim.experiments.experiment import load_experiment

    if ctx.params.get("out"):
        return Path(ctx.params["out"])
    from hwsim.core.resources import DEFAULT_EXPERIMENT

    experiment = load_experiment(ctx.params.get("experiment_path") or DEFAULT_EXPERIMENT)
    return Path("reports") / f"compare-{experiment.name}"


def _run_block(block: Block, tmp_path: Path, monkeypatch, request) -> None:
    from hwsim.cli.common import console

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(console, "width", 80)
    output = ""
    for args in hwsim_commands(block.code):
        path, ctx = resolve(args)
        if path[0] not in CHEAP:
            if path[0] == "compare":
                run = request.getfixturevalue("stand_in_compare_run")
                shutil.copytree(run, tmp_path / _compare_out(ctx), dirs_exist_ok=True)
            continue
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, f"{block.name}: hwsim {shlex.join(args)}:\n{result.output}"
        output = result.stdout
    expected = _expected_output(block)
    if expected is not None:
        got = [line.rstrip() for line in output.splitlines()]
        assert got == [line.rstrip() for line in expected.splitlines()], block.name


#: Runnable blocks without ``hwsim compare``: only cheap commands, seconds in all.
QUICK = [b for b in RUNNABLE if not any(c[:1] == ["compare"] for c in hwsim_commands(b.code))]


@pytest.mark.parametrize("block", QUICK, ids=[b.name for b in QUICK])
def test_quick_bash_block_runs(block: Block, tmp_path: Path, monkeypatch, request):
    _run_block(block, tmp_path, monkeypatch, request)


STANDING_IN = [b for b in RUNNABLE if b not in QUICK]


@pytest.mark.slow
@pytest.mark.parametrize("block", STANDING_IN, ids=[b.name for b in STANDING_IN])
def test_bash_block_with_compare_runs(block: Block, tmp_path: Path, monkeypatch, request):
    """Runnable blocks with a ``hwsim compare`` need the stand-in run (≈ 10 s): slow."""
    _run_block(block, tmp_path, monkeypatch, request)


def test_some_blocks_run_and_one_shows_its_output():
    assert QUICK and any(_expected_output(b) is not None for b in QUICK)
    assert any(any(c[:1] == ["compare"] for c in hwsim_commands(b.code)) for b in RUNNABLE)


def _set_chip(args: list[str]) -> str | None:
    """The shipped chip a documented command with ``--set`` runs on: its ``--chip`` when that
    is a shipped name, else the command's default (simulate and a chip sweep of a workload:
    edge_sram; compare, report and a sweep of a compare run: split_cores); ``None``: a chip
    file of the reader's, not checked here."""
    from hwsim.core.resources import DEFAULT_CHIP, DEFAULT_COMPARE_CHIP, shipped_chip_names

    chips = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--chip", "--add-chip")]
    if chips:
        name = chips[0].removesuffix(".yaml")
        return name if name in shipped_chip_names() else None
    if args[0] in ("compare", "report") or "--run" in args:
        return DEFAULT_COMPARE_CHIP.stem
    return DEFAULT_CHIP.stem


SET_LINES = [
    (where, args)
    for where, args in [*COMMAND_LINES, *((d, shlex.split(s)[1:]) for d, s in SPANS)]
    if "--set" in args[:-1]
]


@pytest.mark.parametrize(("where", "args"), SET_LINES, ids=[" ".join(a) for _, a in SET_LINES])
def test_documented_set_keys_exist_on_the_chip_the_command_runs_on(where: str, args: list[str]):
    from hwsim.core.errors import InputError
    from hwsim.core.resources import CHIPS_DIR
    from hwsim.sim.chip import load_chip

    chip = _set_chip(args)
    if chip is None:
        return
    overrides = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--set"]
    # a sweep's KEY=V1,V2,…: its first value; KEY.PATH=VALUE and `…`: a synopsis, not an example
    firsts = [o if o.rstrip().endswith(("]", "}")) else o.split(",")[0] for o in overrides]
    firsts = [o for o in firsts if "=" in o and not re.search(r"[A-Z…]", o.split("=")[0])]
    if not firsts:
        return
    try:
        load_chip(CHIPS_DIR / f"{chip}.yaml", overrides=firsts)
    except InputError as exc:
        pytest.fail(f"{where}: hwsim {shlex.join(args)} (chip {chip}): {exc}")


def test_the_set_check_sees_documented_examples():
    assert len(SET_LINES) >= 6
