"""The ``hwsim`` command line: a thin wrapper over the Python API.

Each subcommand lives in its own module and only parses options; the work is done by API
functions. Heavy imports (torch) happen inside commands, so ``hwsim simulate`` stays light.
"""

from __future__ import annotations

import sys

import click

from hwsim import __version__
from hwsim.cli.common import ExitCode, InputError, err_console


class _Group(click.Group):
    """Turns InputError into one clear message and exit code 2, Ctrl-C into 130, and a file
    system error into one message and exit code 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except InputError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(ExitCode.BAD_INPUT)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished work was kept", highlight=False)
            sys.exit(ExitCode.INTERRUPTED)
        except OSError as exc:
            # A file system that refuses a write or read mid-run (full disk, vanished directory):
            # the path and the reason, never a traceback. Writes are atomic, so nothing is torn.
            where = f"{exc.filename}: " if exc.filename else ""
            err_console.print(
                f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True
            )
            sys.exit(ExitCode.FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwsim")
def main() -> None:
    """Train networks with BP, FA and IFA, and simulate the chip that trains them."""


def _register() -> None:
    # Each module adds its commands to ``main``; import order is the order in --help.
    from hwsim.cli import analyze, chip, compare, report, reproduce, simulate, sweep, train  # noqa: F401


_register()
