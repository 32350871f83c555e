"""``hwsim reproduce``: run the sweeps that test the paper's claims and write REPRODUCTION.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import (
    OUT_DIR,
    console,
    device_option,
    err_console,
    progress_bar,
    threads_option,
)
from hwsim.cli.sweep import executor_options, exit_failed, open_executor
from hwsim.core.defaults import default_settings
from hwsim.core.resources import default_output

#: The training defaults (the default experiment): the small plan's dataset is its dataset.
DEFAULTS = default_settings()
#: The small plan's measured wall time on a 2-core CPU (docs/reproduce.md: 11.0 min nearly idle,
#: 13.0 min under load in the saved run, docs/results/reproduce-small.json); README says the same.
SMALL_WALL_MIN = "11–13"


def _claims_table(document: dict[str, Any]) -> Table:
    """The claim rows of a ``reproduction.json`` document as a rich table."""
    from hwsim.render.reproduction import row_numbers

    table = Table(title=f"claims ({document['plan']['scale']} scale)")
    for header in ("#", "measurement", "ours", "verdict"):
        table.add_column(header)
    for row in document["claims"]:
        table.add_row(row["claim_id"], row["measurement"], row_numbers(row), row["verdict"])
    return table


@main.command()
@click.option(
    "--scale",
    type=click.Choice(["small", "full"]),
    default="small",
    show_default=True,
    help=f"small: mnist5k, {SMALL_WALL_MIN} min on a 2-core CPU (measured, docs/reproduce.md); "
    "full: paper scale (about a day on 2 cores).",
)
@click.option(
    "--dataset",
    default=None,
    help=f"Dataset [default: {DEFAULTS['dataset']} for small, the default experiment's; mnist "
    "for full].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the mnist / fashion-mnist / cifar10 files (full scale).",
)
@click.option(
    "--out",
    type=OUT_DIR,
    default=None,
    help="Output directory [default: reports/reproduce-<scale>].",
)
@click.option("--force", is_flag=True, help="Start over when --out holds a different plan.")
@threads_option("per worker")
@executor_options
@device_option()
@click.option("--quiet", is_flag=True, help="No progress output or table.")
def reproduce(
    scale: str,
    dataset: str | None,
    data_dir: str | None,
    out: str | None,
    force: bool,
    threads: int,
    executor: str,
    device: str,
    workers: int | None,
    address: str | None,
    retries: int,
    quiet: bool,
) -> None:
    """Run every sweep behind the paper's claims and write OUT/REPRODUCTION.md.

    Both scales train the default experiment's network and settings in float (docs/learning.md,
    "The default experiment"); full: mnist, 20 epochs, seeds 0-4.

    Each claim gets the measurement that tests it, our numbers (mean ± std over seeds) and a
    verdict computed from them. Resumable: Ctrl-C keeps finished runs; the same command resumes.
    --executor processes|ray runs several points at once (docs/reproduce.md).
    """
    from hwsim.experiments.executors import FailedPointsError
    from hwsim.experiments.reproduce import plan_for, run_reproduce
    from hwsim.render.reproduction import write_reproduction

    plan = plan_for(scale, dataset=dataset, data_dir=data_dir)
    out_dir = Path(out) if out else default_output(f"reproduce-{scale}")
    progress = progress_bar(quiet)
    tasks: dict[str, Any] = {}

    def on_sweep(name: str, spec: Any) -> None:
        tasks[name] = progress.add_task(f"{name} sweep", total=len(spec.points()))
        tasks["current"] = tasks[name]
        for note in spec.notes:
            err_console.print(f"[yellow]note:[/] {name} sweep: {note}", highlight=False)

    def on_point(point: Any, index: int, total: int, state: str) -> None:
        if state != "start":
            progress.advance(tasks["current"])

    from hwsim.models.device import resolve_device
    from hwsim.models.training import torch_threads

    resolve_device(device)  # a GPU this machine lacks is bad input before any work

    try:
        with (
            open_executor(executor, workers, address, retries, threads) as runner,
            progress,
            torch_threads(threads),
        ):
            document = run_reproduce(
                plan,
                out_dir,
                force=force,
                on_sweep=on_sweep,
                on_point=on_point,
                executor=runner,
                device=device,
            )
    except FailedPointsError as exc:  # reported once the workers and the display have closed
        exit_failed(exc)
    report = write_reproduction(out_dir)[-1]  # every sweep's figure, then REPRODUCTION.md
    if not quiet:
        console.print(_claims_table(document))
    console.print(
        f"{len(document['claims'])} claim rows, wall {document['timing']['wall_s'] / 60:.1f} min "
        f"→ {report}",
        highlight=False,
    )
