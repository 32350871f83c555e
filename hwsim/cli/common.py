"""Pieces every CLI command shares: the console, exit codes and the input-error type."""

from __future__ import annotations

import enum
import json
import os
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hwsim.core.errors import InputError

__all__ = [
    "OUT_DIR",
    "SET_EXAMPLES",
    "THREADS_RULE",
    "ExitCode",
    "InputError",
    "console",
    "device_option",
    "echo_json",
    "err_console",
    "progress_bar",
    "set_option",
    "threads_option",
]

#: Results go to stdout (so ``--json`` output can be piped); messages go to stderr.
console = Console()
err_console = Console(stderr=True)
# Piped or captured output has no terminal width; rich would assume 80 columns and truncate the
# tables' numbers. Give it room instead (a real terminal keeps its own width, and so does output
# whose width COLUMNS sets: COLUMNS=80 shows what an 80-column terminal gets).
for _c in (console, err_console):
    if not _c.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        _c.width = max(_c.width, 160)


class ExitCode(enum.IntEnum):
    """Exit codes with a meaning a script can rely on."""

    OK = 0
    FAILED = 1  # the job ran and failed (e.g. a run diverged where that is fatal)
    BAD_INPUT = 2  # bad option, spec, config or data file: nothing was run
    INTERRUPTED = 130  # Ctrl-C; what was finished is kept


def progress_bar(quiet: bool) -> Progress:
    """The progress display every long command shares: on stderr, hidden by ``--quiet`` and
    when stderr is not a terminal (so logs and ``--json`` output stay clean).

    Columns: description, bar, done/total, time elapsed and the estimated time remaining (``eta``,
    from the rate so far; ``-:--:--`` until a task has a total and some progress)."""
    from rich.progress import TimeRemainingColumn  # here: the module's imports are shared

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


class _OutDir(click.Path):
    """An output directory: a path that may not exist yet, never a file, never empty."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must name a directory, got an empty string", param, ctx)
        return super().convert(value, param, ctx)


#: The type of every ``--out`` option.
OUT_DIR = _OutDir()


def echo_json(document: Any, indent: int = 2) -> None:
    """Print ``document`` as strict JSON (``--json``): a non-finite number is an error, never
    ``Infinity`` or ``NaN`` in the output."""
    try:
        text = json.dumps(document, indent=indent, allow_nan=False)
    except ValueError:
        raise InputError(
            "the result holds a number that is not finite (an overflow or a 0/0); check the "
            "inputs' magnitudes"
        ) from None
    click.echo(text)


def device_option(default: str = "auto") -> Any:
    """``--device auto|cpu|cuda``: where training and analyses run (``auto``: a GPU when torch
    sees one). ``cuda:N`` is accepted too; a GPU this torch cannot see is an input error."""

    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        text = value.strip().lower()
        if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
            return text
        raise click.BadParameter(f"{value!r}: expected auto, cpu, cuda or cuda:N")

    return click.option(
        "--device",
        default=default,
        show_default=True,
        callback=check,
        help="auto (a GPU when there is one), cpu, cuda or cuda:N.",
    )


#: The one rule on torch threads, shown by every command that computes with torch.
THREADS_RULE = (
    "Every command that computes uses 1 unless told: the count changes the order of float sums "
    "and so the numbers; a fixed count gives the same numbers on every machine."
)


def threads_option(per: str = "") -> Any:
    """``--threads N`` (default 1): torch's intra-op threads for the command, applied with
    :func:`hwsim.models.training.torch_threads`. Every command that computes with torch
    (train, analyze, compare, sweep, reproduce) takes this one option; ``per`` names the unit
    that gets N threads when runs go in parallel (e.g. ``"per training run"``)."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help=f"Torch threads{' ' + per if per else ''}. {THREADS_RULE}",
    )


#: ``--set`` examples by the chip they run on: each names keys that chip has (a test loads each
#: example onto its chip). simulate's default chip (``DEFAULT_CHIP``) and compare's
#: (``DEFAULT_COMPARE_CHIP``) name their weight memories differently.
SET_EXAMPLES = {
    "edge_sram": "memories.weight_sram.read_energy_pj=2 or placement.weights=dram",
    "split_cores": "memories.fwd_weight_sram.read_energy_pj=2 or placement.weights=dram",
}


def set_option(
    name: str = "overrides",
    help: str | None = None,
    chip: str = "edge_sram",
    whose: str = "the default chip",
) -> Any:
    """``--set KEY.PATH=VALUE`` (repeatable): chip overrides for
    :func:`hwsim.sim.chip.load_chip`'s ``overrides``; the command gets a tuple of strings in its
    parameter ``name``. Without ``help``, the help's example is :data:`SET_EXAMPLES`'s for
    ``chip``, the chip the command runs on by default (``whose`` says which it is)."""
    if help is None:
        help = (
            f"Override a chip key, e.g. {SET_EXAMPLES[chip]} on {chip}, {whose} (repeatable; "
            "the value is YAML; null deletes the key)."
        )
    return click.option(
        "--set",
        name,
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help=help,
    )
