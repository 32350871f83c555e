"""``hwsim report RUN_DIR``: write the human report of a compare run again, or price its trained
runs on other chips, without training."""

from __future__ import annotations

from pathlib import Path

import click

from hwsim.cli import main
from hwsim.cli.common import console, set_option


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--chip",
    "chips",
    multiple=True,
    help="Price the runs on these chips instead (file or shipped name); repeatable.",
)
@click.option(
    "--add-chip",
    "added",
    multiple=True,
    help="Price the runs on this chip too, beside the run's own; repeatable.",
)
@set_option(chip="split_cores", whose="the chip of compare's default experiment")
def report(
    run_dir: str, chips: tuple[str, ...], added: tuple[str, ...], overrides: tuple[str, ...]
) -> None:
    """Write report.md, report.html and figures/ from a `hwsim compare` run directory.

    With --chip, --add-chip or --set, the run's trained runs are first simulated again on
    the chips asked for (summary.json, accesses.csv and actions.csv are rewritten): nothing is
    trained, and a run that is missing is an error.
    """
    from hwsim.render.report import write_report

    if chips or added or overrides:
        _reprice(Path(run_dir), chips, added, overrides)
    for path in write_report(run_dir):
        console.print(str(path), highlight=False, soft_wrap=True)


def _reprice(
    run_dir: Path, chips: tuple[str, ...], added: tuple[str, ...], overrides: tuple[str, ...]
) -> None:
    from hwsim.cli.common import InputError
    from hwsim.core.files import read_json
    from hwsim.experiments.compare import run_compare
    from hwsim.experiments.experiment import load_experiment

    experiment_file = run_dir / "experiment.yaml"
    if not experiment_file.is_file():
        raise InputError(f"{run_dir}: no experiment.yaml: not a `hwsim compare` run directory")
    summary = read_json(run_dir / "summary.json", "the summary of a compare run")
    own = [str(run_dir / "chips" / f"{name}.yaml") for name in summary.get("chip_order", [])]
    experiment = load_experiment(experiment_file).with_overrides(chips=[*(chips or own), *added])
    run_compare(experiment, run_dir, chip_overrides=overrides, train=False)
