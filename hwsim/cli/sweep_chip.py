"""``hwsim sweep chip``: the chip-parameter sweep of ``hwsim sweep`` (it trains nothing).

:mod:`hwsim.cli.sweep` owns the command; it takes :data:`chip_sweep_options` and hands the
``chip`` kind to :func:`sweep_chip` before anything of training is imported. The training
options of the other kinds do not apply here, and are refused when given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hwsim.cli.common import InputError, console, echo_json, progress_bar, set_option

#: Parameters of ``hwsim sweep`` that the chip sweep reads; any other given is refused.
CHIP_PARAMETERS = frozenset(
    {"kind", "set", "workload", "model", "run", "chip", "algo", "out", "force", "as_json", "quiet"}
)

#: The column of ``transport_share`` (sweep.json, sweep.csv): not weight transport alone — BP on
#: a mirror chip moves no weight-transport bit, and its share is the mirror's synchronization.
W_TO_ERROR_UNIT = "W to error unit"
W_TO_ERROR_UNIT_NOTE = (
    "share of the energy that carries W (or its sign) to the error unit, weight transport's "
    "wires plus a mirror's synchronization (field transport_share; on a mirror chip BP "
    "transports 0 bits and this is its mirror sync)"
)

_OPTIONS = (
    set_option(
        name="set",
        help="chip: a chip key and its values, KEY.PATH=V1,V2,… (repeat for a grid), e.g. "
        "memories.dram.write_energy_pj=1300,2600,5200 on edge_sram (the default chip) or "
        "split_cores (compare's, with --run); values are YAML.",
    ),
    click.option(
        "--workload",
        type=click.Path(dir_okay=False),
        default=None,
        help="chip: the workload.json every rule trains.",
    ),
    click.option("--model", default=None, help="chip: a model spec instead (mlp:784-256-10)."),
    click.option(
        "--run",
        type=click.Path(file_okay=False),
        default=None,
        help="chip: a compare run directory: each rule's workload, and the defaults of --chip "
        "and --algo.",
    ),
    click.option(
        "--chip",
        default=None,
        help="chip: the base chip, a file or a shipped name [the run's chip, else edge_sram].",
    ),
)


def chip_sweep_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--set``, ``--workload``, ``--model``, ``--run`` and ``--chip`` to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _refuse_training_options() -> None:
    """The training options of ``hwsim sweep`` given on the command line: an InputError."""
    ctx = click.get_current_context()
    given = [
        param
        for param in ctx.command.params
        if param.name is not None
        and param.name not in CHIP_PARAMETERS
        and ctx.get_parameter_source(param.name)
        in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    ]
    if given:
        names = ", ".join(param.opts[0] for param in given)
        raise InputError(
            f"{names}: does not apply to the chip sweep (it simulates, it trains nothing)"
        )


def sweep_chip(
    *,
    sets: tuple[str, ...],
    workload: str | None,
    model: str | None,
    run: str | None,
    chip: str | None,
    algo: str | None,
    out: str | None,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run ``hwsim sweep chip`` (``sets``: the ``--set`` options): simulate each point of the
    grid with each rule; write OUT/sweep.json, OUT/sweep.csv and OUT/chip.png; print a table
    (or ``--json``)."""
    from hwsim.core.resources import default_output
    from hwsim.experiments.chip_sweep import make_chip_sweep_spec, run_chip_sweep
    from hwsim.render.chip_sweep import write_chip_sweep_figure

    _refuse_training_options()
    spec = make_chip_sweep_spec(
        sets, workload=workload, model=model, run=run, chip=chip, rules=algo
    )
    out_dir = Path(out) if out else default_output("sweep-chip")
    progress = progress_bar(quiet)
    task = progress.add_task("chip sweep", total=len(spec.points()))

    def on_point(index: int, total: int, label: str) -> None:
        progress.update(task, completed=index, description=f"chip sweep: {label}")

    with progress:
        summary = run_chip_sweep(spec, out_dir, force=force, on_point=on_point)
        progress.update(task, completed=len(spec.points()))
    figure = write_chip_sweep_figure(out_dir, summary)
    if as_json:
        echo_json(summary)
        return
    if not quiet:
        console.print(chip_sweep_table(summary))
        for note in summary["notes"]:
            console.print(f"note: {note}", highlight=False)
    console.print(
        f"{len(summary['points'])} points × {len(summary['rules'])} rules → "
        f"{out_dir / 'sweep.json'}, {out_dir / 'sweep.csv'}, {figure}",
        highlight=False,
    )


def chip_sweep_table(summary: dict[str, Any]) -> Table:
    """A chip sweep's ``sweep.json`` as a rich table: the base chip, then one row per point ×
    rule."""
    from hwsim.experiments.chip_sweep import value_text

    keys = [p["key"] for p in summary["parameters"]]
    # A key path is long (memories.weight_sram.read_energy_pj): its last part heads the column,
    # the whole path is in the caption, so the table fits an 80-column terminal.
    table = Table(
        title=f"chip sweep on {summary['chip']['name']} ({len(summary['points'])} points)",
        caption="swept: " + ", ".join(keys) + "; energy and latency per training step; "
        f"{W_TO_ERROR_UNIT}: {W_TO_ERROR_UNIT_NOTE}",
    )
    columns = [
        *(key.rsplit(".", 1)[-1] for key in keys),
        "rule",
        "energy (µJ)",
        "÷ BP",
        "latency (ms)",
        W_TO_ERROR_UNIT,
    ]
    # fold, never crop: with several parameters the table is wider than 80 columns, and a long
    # header (read_energy_pj) folds rather than cutting the last column off
    for header in columns:
        table.add_column(header, justify="right", overflow="fold")

    def rows(values: list[str], rules: dict[str, Any], style: str | None = None) -> None:
        for rule, r in rules.items():
            ratio = r.get("energy_vs_bp")
            share = r.get("transport_share")
            table.add_row(
                *values,
                rule,
                f"{r['energy_pj'] / 1e6:,.3f}",
                "—" if ratio is None else f"{ratio:.3f}",
                f"{r['latency_s'] * 1e3:,.3f}",
                "—" if share is None else f"{100 * share:.2f} %",
                style=style,
            )

    rows(["(base)"] * len(keys), summary["base"]["rules"], style="dim")
    for point in summary["points"]:
        rows([value_text(point["values"][k]) for k in keys], point["rules"])
    return table
