"""``hwsim report RUN_DIR``: regenerate the human report of a compare run without retraining."""

from __future__ import annotations

import click

from hwsim.cli import main
from hwsim.cli.common import console


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir: str) -> None:
    """Write report.md, report.html and figures/ from a `hwsim compare` run directory."""
    from hwsim.render.report import write_report

    for path in write_report(run_dir):
        console.print(str(path), highlight=False, soft_wrap=True)
