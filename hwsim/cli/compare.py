"""``hwsim compare``: train each rule, simulate the chip(s), write the comparison report."""

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
    echo_json,
    err_console,
    progress_bar,
    set_option,
    threads_option,
)
from hwsim.core.resources import default_output, shipped_experiment_names
from hwsim.core.rules import RULE_SYNTAX


def _table(summary: dict[str, Any], chip: str) -> Table:
    """The headline numbers per rule on ``chip``, narrow enough for an 80-column terminal
    (the transport, sync and feedback bits are in the report and summary.json)."""
    from hwsim.core.units import format_si

    seeds = len(summary["seeds"])
    table = Table(
        title=f"{summary['data']['dataset']} on chip {chip}",
        caption=f"test accuracy: {'mean ± std over ' if seeds > 1 else ''}{seeds} seed"
        f"{'s' if seeds > 1 else ''}; chip numbers per training step",
    )
    for header in ("rule", "test acc", "energy", "latency", "energy ÷ BP", "latency ÷ BP"):
        table.add_column(header, justify="right")
    for rule in summary["rule_order"]:
        r = summary["chips"][chip]["rules"][rule]
        acc = r["test_accuracy"]
        ratios = r.get("ratios_to_bp") or {}
        table.add_row(
            rule,
            "—"
            if acc["final"] is None
            else f"{acc['final']:.3f}" + (f" ± {acc['final_std']:.3f}" if seeds > 1 else ""),
            format_si(r["energy_pj"]["total"] * 1e-12, "J"),
            format_si(r["latency_s"], "s"),
            *(
                "—" if ratios.get(key) is None else f"{ratios[key]:.3f}"
                for key in ("energy_per_step", "latency_per_step")
            ),
        )
    return table


def _wear_table(summary: dict[str, Any], chip: str) -> Table | None:
    """Per rule on ``chip``: the first cell to wear out (tensor, layer, level), its program
    operations per step, and the steps and training runs until it reaches its endurance; 80
    columns wide. ``None`` for a chip without non-volatile levels or whose cells no step
    programs."""
    from hwsim.render.wear import count_text, first_failures, wears_out

    if not wears_out(summary, chip):
        return None
    table = Table(
        title=f"lifetime on chip {chip}: when the most-written cell wears out",
        caption="writes: that cell's program operations per step; steps, runs: training steps "
        "and runs until it reaches its endurance; upper bound: every update programs every "
        "cell (no measured update sparsity)",
    )
    for header in ("rule", "cell", "writes", "steps", "runs", "rate"):
        table.add_column(header, justify="right")
    for rule, first in first_failures(summary, chip).items():
        if first is None:
            table.add_row(rule, "no cell written by a step", "—", "—", "—", "—")
            continue
        basis = str(first["basis"])
        rate = next((r for r in ("measured", "upper bound") if basis.startswith(r)), "exact")
        table.add_row(
            rule,
            f"{first['tensor']} {first['layer']} in {first['level']}",
            f"{first['writes']:.3g}",
            count_text(first["steps"]),
            count_text(first.get("runs")),
            rate,
        )
    return table


@main.command()
@click.option(
    "--algo", default=None, help=f"Rules, comma-separated ({RULE_SYNTAX}) [default: experiment's]."
)
@click.option(
    "--chip",
    "chips",
    multiple=True,
    help="Chip YAML file or shipped chip name; repeat to compare chips.",
)
@click.option(
    "--experiment",
    "experiment_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Experiment YAML file, or a shipped experiment by name: "
    f"{', '.join(shipped_experiment_names())} (from any folder) [default: default].",
)
@click.option("--dataset", default=None, help="Override the experiment's dataset.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the mnist / fashion-mnist / cifar10 files [default: the experiment's].",
)
@click.option("--epochs", type=int, default=None, help="Override the experiment's epochs.")
@click.option("--seed", type=int, default=None, help="Train with this one seed.")
@click.option(
    "--seeds", default=None, help="Train with these seeds, e.g. 0,1,2 [default: the experiment's]."
)
@click.option(
    "--out",
    type=OUT_DIR,
    default=None,
    help="Run directory [default: reports/compare-<experiment name>].",
)
@set_option(chip="split_cores")
@click.option(
    "--force",
    is_flag=True,
    help="Start over when --out holds other training settings (trained runs are kept).",
)
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars or tables.")
@device_option()
@threads_option("per training run")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    envvar="HWSIM_WORKERS",
    help="Training runs at once, each in its own process [default: $HWSIM_WORKERS, else one per "
    "core on the CPU, 1 on a GPU].",
)
def compare(
    algo: str | None,
    chips: tuple[str, ...],
    experiment_path: str | None,
    dataset: str | None,
    data_dir: str | None,
    epochs: int | None,
    seed: int | None,
    seeds: str | None,
    out: str | None,
    overrides: tuple[str, ...],
    force: bool,
    as_json: bool,
    quiet: bool,
    device: str,
    threads: int,
    workers: int | None,
) -> None:
    """Train every rule on the same data and init, simulate the chip, write the report.

    Rerunning into the same --out reuses every finished training run whose settings match
    (runs are keyed by a hash of what determines them): edit a chip, or add one, and the
    same command re-prices in seconds without training.
    """
    from hwsim.cli.sweep import parse_list
    from hwsim.core.resources import DEFAULT_EXPERIMENT
    from hwsim.experiments.compare import run_compare
    from hwsim.experiments.experiment import load_experiment
    from hwsim.render.report import write_report
    from hwsim.render.wear import has_wear

    experiment = load_experiment(experiment_path or DEFAULT_EXPERIMENT).with_overrides(
        rules=algo,
        chips=list(chips) or None,
        dataset=dataset,
        data_dir=data_dir,
        epochs=epochs,
        seed=seed,
        seeds=parse_list(seeds, int, "--seeds") if seeds is not None else None,
    )
    out_dir = Path(out) if out else default_output(f"compare-{experiment.name}")
    progress = progress_bar(quiet)
    tasks: dict[str, Any] = {}

    def on_train_start(rule: str, seed_: int, total: int) -> None:
        tasks["train"] = progress.add_task(f"train {rule} (seed {seed_})", total=total)

    def on_epoch(row: dict[str, Any]) -> None:
        progress.update(tasks["train"], completed=row["epoch"])

    def on_trained(rule: str, seed_: int) -> None:
        if "train" in tasks:
            return  # one run at a time: the per-run bar of on_train_start shows it
        if "runs" not in tasks:
            tasks["runs"] = progress.add_task("train (runs at once)", total=None)
        progress.advance(tasks["runs"])

    def on_simulated(chip: str, rule: str) -> None:
        if "sim" not in tasks:
            total = len(experiment.chips) * len(experiment.rules)
            tasks["sim"] = progress.add_task("simulate", total=total)
        progress.advance(tasks["sim"])

    def on_plan(reused: int, to_train: int) -> None:
        if reused and not quiet:
            err_console.print(
                f"reusing {reused} finished training run{'s' if reused > 1 else ''} in "
                f"{out_dir / 'runs'}; "
                + (f"training {to_train}" if to_train else "nothing to train"),
                highlight=False,
                soft_wrap=True,
            )

    from hwsim.cli.sweep import exit_failed
    from hwsim.experiments.executors import FailedPointsError

    try:
        with progress:
            summary = run_compare(
                experiment,
                out_dir,
                force=force,
                chip_overrides=overrides,
                device=device,
                threads=threads,
                workers=workers,
                on_train_start=on_train_start,
                on_epoch=on_epoch,
                on_trained=on_trained,
                on_simulated=on_simulated,
                on_plan=on_plan,
            )
    except FailedPointsError as exc:  # reported once the progress display has closed
        exit_failed(exc)
    write_report(out_dir)
    if as_json:
        echo_json(summary)
        return
    if not quiet:
        for chip in summary["chip_order"]:
            console.print(_table(summary, chip))
            wear = _wear_table(summary, chip)
            if wear is not None:
                console.print(wear)
            elif has_wear(summary, chip):
                console.print(
                    f"lifetime on chip {chip}: no training step programs a non-volatile cell",
                    highlight=False,
                )
    console.print(f"report: {out_dir / 'report.html'}", highlight=False)
