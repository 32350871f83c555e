"""``hwsim simulate``: simulate a chip training a workload with each learning rule."""

from __future__ import annotations

import json

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console


@main.command()
@click.option("--algo", default="bp,fa,ifa", show_default=True, help="Rules: bp,fa,ifa,ifa:<deg>.")
@click.option(
    "--chip",
    "chip_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Chip YAML (default: configs/chips/edge_sram.yaml).",
)
@click.option(
    "--workload",
    "workload_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="workload.json of a training run.",
)
@click.option("--model", default=None, help="Model spec instead: mlp:784-256-256-10 or resnet18.")
@click.option("--batch-size", type=int, default=None, help="Batch size with --model (default 64).")
@click.option("--timeline", is_flag=True, help="Include the event timeline in --json output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def simulate(
    algo: str,
    chip_file: str | None,
    workload_file: str | None,
    model: str | None,
    batch_size: int | None,
    timeline: bool,
    as_json: bool,
) -> None:
    """Count, time and price every memory access of on-chip training, per rule."""
    from hwsim.core.resources import DEFAULT_CHIP
    from hwsim.core.workload import workload_from_dict
    from hwsim.sim.api import simulate as run_simulation
    from hwsim.sim.model_specs import build_workload

    if (workload_file is None) == (model is None):
        raise InputError("give exactly one of --workload FILE or --model SPEC")
    if workload_file is not None:
        if batch_size is not None:
            raise InputError("--batch-size only goes with --model (a workload has its own)")
        workload = workload_file
    else:
        workload = workload_from_dict(
            build_workload(model, batch_size=64 if batch_size is None else batch_size), model
        )
    result = run_simulation(workload, chip_file or DEFAULT_CHIP, algo, timeline=timeline)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"{result.workload['model'] or 'workload'} on chip {result.chip}")
    for column in (
        "rule",
        "energy / step (µJ)",
        "latency / step (cycles)",
        "latency / step (ms)",
        "weight transport (bits)",
        "sync writes (bits)",
        "feedback reads (bits)",
        "MACs",
    ):
        table.add_column(column, justify="right")
    for spec, r in result.rules.items():
        table.add_row(
            spec,
            f"{r.energy_pj / 1e6:,.3f}",
            f"{r.latency_cycles:,}",
            f"{r.latency_s * 1e3:,.3f}",
            f"{r.weight_transport_bits:,}",
            f"{r.sync_write_bits:,}",
            f"{r.feedback_read_bits:,}",
            f"{r.macs:,}",
        )
    console.print(table)
    for spec, r in result.rules.items():
        if r.run_totals is not None:
            rt = r.run_totals
            console.print(
                f"{spec}: whole run ({rt.epochs} epochs × {rt.steps_per_epoch} steps): "
                f"{rt.energy.total_pj / 1e12:,.4f} J, {rt.latency_s:,.3f} s",
                highlight=False,
            )
