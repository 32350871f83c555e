"""The ``hwsim`` command line: a thin wrapper over the Python API.

Each subcommand lives in its own module and only parses options; the work is done by API
functions. Heavy imports (torch) happen inside commands, so ``hwsim simulate`` stays light.
"""

from __future__ import annotations

import contextlib
import sys

import click
from rich.text import Text

from hwsim import __version__
from hwsim.cli.common import ExitCode, InputError, err_console
from hwsim.core.interrupts import interrupts_deferred


def _print_error(message: str) -> None:
    """``error: message`` on stderr, the message verbatim: a value from a user's file may hold
    ``[/]`` or ``:100:``, which rich would otherwise read as markup or an emoji code."""
    err_console.print(
        Text.assemble(("error:", "bold red"), " ", message),
        highlight=False,
        soft_wrap=True,
        emoji=False,
    )


#: Commands that train or read trained models: they import torch, which takes seconds.
#: (``compare`` imports it only when a run needs training: re-pricing trained runs stays light.)
_TORCH_COMMANDS = {"train", "sweep", "reproduce", "analyze"}


class _Group(click.Group):
    """Turns InputError into one clear message and exit code 2, Ctrl-C into 130, and a file
    system error into one message and exit code 1."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        simulates = name == "sweep" and rest[:1] == ["chip"]  # the chip sweep trains nothing
        if name in _TORCH_COMMANDS and not simulates:
            with interrupts_deferred(), contextlib.suppress(ImportError):
                import hwsim.models.training  # noqa: F401  (whole, before any work starts)
        return name, command, rest

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except InputError as exc:
            _print_error(str(exc))
            sys.exit(ExitCode.BAD_INPUT)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished work was kept", highlight=False)
            sys.exit(ExitCode.INTERRUPTED)
        except OSError as exc:
            # A file system that refuses a write or read mid-run (full disk, vanished directory):
            # the path and the reason, never a traceback. Writes are atomic, so nothing is torn.
            where = f"{exc.filename}: " if exc.filename else ""
            _print_error(f"{where}{exc.strerror or exc}")
            sys.exit(ExitCode.FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwsim")
def main() -> None:
    """Train networks with BP, FA and IFA, and simulate the chip that trains them."""


def _register() -> None:
    # Each module adds its commands to ``main``; import order is the order in --help.
    from hwsim.cli import analyze, chip, compare, report, reproduce, simulate, sweep, train  # noqa: F401


_register()
