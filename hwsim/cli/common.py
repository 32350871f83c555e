"""Pieces every CLI command shares: the console, exit codes and the input-error type."""

from __future__ import annotations

import enum

from rich.console import Console

from hwsim.errors import InputError

__all__ = ["ExitCode", "InputError", "console", "err_console"]

#: Results go to stdout (so ``--json`` output can be piped); messages go to stderr.
console = Console()
err_console = Console(stderr=True)


class ExitCode(enum.IntEnum):
    """Exit codes with a meaning a script can rely on."""

    OK = 0
    FAILED = 1  # the job ran and failed (e.g. a run diverged where that is fatal)
    BAD_INPUT = 2  # bad option, spec, config or data file: nothing was run
    INTERRUPTED = 130  # Ctrl-C; what was finished is kept
