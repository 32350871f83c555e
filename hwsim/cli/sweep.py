"""``hwsim sweep``: train over initial angle, depth, training-set size or init gains."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Group
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import (
    OUT_DIR,
    ExitCode,
    InputError,
    console,
    device_option,
    echo_json,
    err_console,
    progress_bar,
    threads_option,
)
from hwsim.cli.sweep_chip import chip_sweep_options, sweep_chip
from hwsim.core.defaults import default_settings
from hwsim.core.resources import default_output
from hwsim.core.units import MISSING, format_mean_std

#: The training defaults: the built-in default experiment (configs/experiments/default.yaml,
#: docs/learning.md "The default experiment"); --help shows these values.
DEFAULTS = default_settings()

#: The kind-specific options, and the kinds that take each.
KIND_OPTIONS = {
    "angles": ("angle",),
    "depths": ("depth",),
    "sizes": ("data",),
    "min_steps": ("data",),
    "gains": ("init",),
    "algo": ("depth", "data", "init", "chip"),
    # the chip sweep's own (hwsim.cli.sweep_chip)
    "set": ("chip",),
    "workload": ("chip",),
    "model": ("chip",),
    "run": ("chip",),
    "chip": ("chip",),
}


def parse_list(text: str, convert: Callable[[str], Any], option: str) -> tuple[Any, ...]:
    """``"0,15,30"`` → ``(0, 15, 30)`` with ``convert``; a bad item is an InputError."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = tuple(convert(t) for t in items)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated numbers") from None
    if not values:
        raise InputError(f"{option} is empty")
    return values


def fmt_stat(stat: dict[str, Any] | None, spec: str = ".3f") -> str:
    """``mean ± std`` of an aggregate of ``sweep.json`` (``—`` when missing), in
    :func:`hwsim.core.units.format_mean_std`'s one format. With fewer than two seeds there is
    no spread, so no ``±`` at all (never ``± 0.000``), whatever the file's ``std`` says."""
    stat = stat or {}
    values = stat.get("values")
    count = stat.get("n", len(values) if isinstance(values, list) else None)
    std = stat.get("std") if count is None or count >= 2 else None
    return format_mean_std(stat.get("mean"), std, spec)


def _value_text(value: Any) -> str:
    if isinstance(value, list):  # init sweep: [forward gain, backward gain]
        return f"{value[0]:g} × {value[1]:g}"
    return MISSING if value is None else f"{value:g}"


def _stat_table(title: str, parameter: str, columns: list[str]) -> Table:
    """A sweep table: parameter and rule first, then ``columns``; every cell folds rather than
    being cut to ``…``, and the widths used (13 characters for ``0.912 ± 0.003``) fit 80."""
    table = Table(title=title)
    for header in [parameter, "rule", *columns]:
        table.add_column(header, justify="right", overflow="fold")
    return table


def sweep_table(summary: dict[str, Any]) -> Group:
    """The aggregates of a sweep as rich tables that fit an 80-column terminal: accuracy (one
    row per parameter value × rule), then curvature and robustness each in a table of their
    own when measured (mean ± sample std over seeds; no ``±`` with one seed)."""
    parameter = summary["parameter"] or "config"
    groups = summary["groups"]
    if any(isinstance(g["value"], list) for g in groups):
        parameter = "fwd × bwd gain"
    title = f"{summary['kind']} sweep ({summary['points']} points)"
    accuracy = _stat_table(title, parameter, ["seeds", "test acc", "train acc", "diverged"])
    curvature = _stat_table(
        "curvature (BP view, final weights)", parameter, ["Hessian trace", "top eigenvalue"]
    )
    robustness = _stat_table(
        "robustness (mean over ε > 0)", parameter, ["PGD true", "PGD transfer", "corrupted"]
    )
    for g in groups:
        m = g["metrics"]
        head = [_value_text(g["value"]), g["rule"]]
        accuracy.add_row(
            *head,
            str(len(g["seeds"])),
            fmt_stat(m.get("final_test_accuracy")),
            fmt_stat(m.get("final_train_accuracy")),
            str(g["diverged"]),
        )
        curvature.add_row(
            *head, *(fmt_stat(m.get(k), ".4g") for k in ("hessian_trace", "top_eigenvalue"))
        )
        robustness.add_row(
            *head,
            *(
                fmt_stat(m.get(k))
                for k in ("pgd_true_accuracy", "pgd_transfer_accuracy", "corruption_accuracy")
            ),
        )
    tables = [accuracy]
    if any("hessian_trace" in g["metrics"] for g in groups):
        tables.append(curvature)
    if any("pgd_true_accuracy" in g["metrics"] for g in groups):
        tables.append(robustness)
    return Group(*tables)


#: ``hwsim sweep`` and ``hwsim reproduce``: where the points run (docs/reproduce.md).
EXECUTOR_OPTIONS = (
    click.option(
        "--executor",
        type=click.Choice(["local", "processes", "ray"]),
        default="local",
        show_default=True,
        help="Where the points run: one after another here, on this machine's cores, or as Ray "
        "tasks (pip install 'hwsim[ray]').",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="processes/ray: points at once [cores ÷ --threads].",
    ),
    click.option(
        "--address",
        default=None,
        help="ray: a running Ray cluster, HOST:PORT [a local Ray instance].",
    ),
    click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="processes/ray: more attempts for a point that failed or whose worker died.",
    ),
)


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--executor``, ``--workers``, ``--address`` and ``--retries`` to ``command``."""
    for option in reversed(EXECUTOR_OPTIONS):
        command = option(command)
    return command


def open_executor(
    executor: str, workers: int | None, address: str | None, retries: int, threads: int
) -> Any:
    """The executor of the options (checked: bad combinations are InputErrors, exit 2)."""
    from hwsim.experiments.executors import make_executor

    return make_executor(
        executor, workers=workers, threads=threads, address=address, retries=retries
    )


def exit_failed(error: Exception) -> NoReturn:
    """Points failed on every attempt: say which (finished ones are kept), exit 1."""
    from hwsim.cli import _print_error

    _print_error(str(error))
    sys.exit(ExitCode.FAILED)


@main.command()
@click.argument("kind", type=click.Choice(["angle", "depth", "data", "init", "chip"]))
@click.option("--dataset", default=DEFAULTS["dataset"], show_default=True, help="Dataset name.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the mnist / fashion-mnist / cifar10 files.",
)
@click.option(
    "--seeds",
    default=",".join(map(str, DEFAULTS["seeds"])),
    show_default=True,
    help="Seeds, e.g. 0,1,2.",
)
@click.option("--epochs", type=int, default=DEFAULTS["epochs"], show_default=True)
@click.option(
    "--depth",
    type=int,
    default=DEFAULTS["depth"],
    show_default=True,
    help="MLP depth (except the depth sweep).",
)
@click.option(
    "--width", type=int, default=DEFAULTS["width"], show_default=True, help="MLP hidden width."
)
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["adam", "sgd"]),
    default=DEFAULTS["optimizer"],
    show_default=True,
)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Learning rate.")
@click.option(
    "--momentum", type=float, default=DEFAULTS["momentum"], show_default=True, help="SGD momentum."
)
@click.option(
    "--weight-bits",
    type=int,
    default=DEFAULTS["weight_bits"],
    show_default=True,
    help="Weights (and B): 2..16, 32 = float.",
)
@click.option(
    "--act-bits",
    type=int,
    default=DEFAULTS["act_bits"],
    show_default=True,
    help="Activations: 2..16, 32 = float.",
)
@click.option("--angles", default=None, help="angle: θ in degrees [0,15,30,45,60,75,90].")
@click.option("--depths", default=None, help="depth: depths [2,4,6,8,10].")
@click.option(
    "--sizes",
    default=None,
    help="data: training-set sizes [100,500,1000,5000,10000,50000], capped at the dataset's.",
)
@click.option(
    "--min-steps",
    type=int,
    default=None,
    help="data: more epochs for small sets so each point gets this many steps [0].",
)
@click.option("--gains", default=None, help="init: gains, forward × backward grid [0.5,1,1.414,2].")
@click.option("--algo", default=None, help="depth/data: rules [bp,fa,ifa]; init: [ifa,fa].")
@chip_sweep_options
@click.option(
    "--curvature/--no-curvature",
    default=None,
    help="Hessian trace and top eigenvalue per point [on for angle, off otherwise].",
)
@click.option(
    "--curvature-at-loss",
    type=float,
    default=None,
    help="Also measure curvature at the first epoch with training loss ≤ this (keeps snapshots).",
)
@click.option(
    "--out",
    type=OUT_DIR,
    default=None,
    help="Sweep directory [default: reports/sweep-<kind>].",
)
@click.option("--force", is_flag=True, help="Start over when --out holds a different sweep.")
@threads_option("per worker")
@executor_options
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print sweep.json to stdout.")
@click.option("--quiet", is_flag=True, help="No progress output or table.")
def sweep(
    kind: str,
    dataset: str,
    data_dir: str | None,
    seeds: str,
    epochs: int,
    depth: int,
    width: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_bits: int,
    act_bits: int,
    curvature: bool | None,
    curvature_at_loss: float | None,
    out: str | None,
    force: bool,
    threads: int,
    executor: str,
    device: str,
    workers: int | None,
    address: str | None,
    retries: int,
    as_json: bool,
    quiet: bool,
    **kind_options: Any,
) -> None:
    """Train one run per parameter value × rule × seed; resumable; mean ± std over seeds.

    KIND: angle (rule ifa:θ per θ, Fig 4), depth (Fig 3b), data (training-set size, Fig 3c) or
    init (forward × backward init gain grid, final train accuracy, Fig 3a), or chip (no
    training: simulate a workload on a grid of chip variants, --set KEY.PATH=V1,V2,…; see
    docs/simulator.md, "Editing a chip"). Each finished point
    is appended to OUT/points.jsonl at once; Ctrl-C keeps them and the same command resumes.
    At the end: OUT/sweep.json (mean ± sample std over seeds) and its figure OUT/<kind>.png.
    --executor processes|ray runs several points at once; this process still writes every line.
    """
    for name, value in kind_options.items():
        if value not in (None, ()) and kind not in KIND_OPTIONS[name]:
            option = "--" + name.replace("_", "-")
            raise InputError(f"{option} does not apply to the {kind} sweep")
    if kind == "chip":
        sweep_chip(
            sets=kind_options["set"],
            **{k: kind_options[k] for k in ("workload", "model", "run", "chip", "algo")},
            out=out,
            force=force,
            as_json=as_json,
            quiet=quiet,
        )
        return
    from hwsim.experiments.executors import FailedPointsError
    from hwsim.experiments.sweeps import CurvatureSettings, make_spec, run_sweep
    from hwsim.models.config import TrainConfig
    from hwsim.render.sweeps import write_sweep_figure

    base = TrainConfig(
        dataset=dataset,
        data_dir=data_dir,
        depth=depth,
        width=width,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_bits=weight_bits,
        act_bits=act_bits,
        snapshots=False,
    )
    values_option = {"angle": "angles", "depth": "depths", "data": "sizes", "init": "gains"}[kind]
    convert = float if kind in ("angle", "init") else int
    raw_values = kind_options[values_option]
    values = parse_list(raw_values, convert, f"--{values_option}") if raw_values else None
    algo = kind_options["algo"]
    wants_curvature = (kind == "angle") if curvature is None else curvature
    if curvature_at_loss is not None:
        if curvature is False:
            raise InputError("--curvature-at-loss needs curvature: drop --no-curvature")
        wants_curvature = True
    spec = make_spec(
        kind,
        base=base,
        values=values,
        rules=parse_list(algo, str, "--algo") if algo else None,
        seeds=parse_list(seeds, int, "--seeds"),
        min_steps=kind_options["min_steps"] or 0,
        curvature=CurvatureSettings(at_loss=curvature_at_loss) if wants_curvature else None,
    )
    if kind == "angle" and not wants_curvature:
        spec = dataclasses.replace(spec, curvature=None)
    out_dir = Path(out) if out else default_output(f"sweep-{kind}")
    for note in spec.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    progress = progress_bar(quiet)
    task = progress.add_task(f"{kind} sweep", total=len(spec.points()))

    def on_point(point: Any, index: int, total: int, state: str) -> None:
        if state == "start":
            progress.update(task, description=f"{kind} sweep: {point.point_id}")
        else:
            progress.advance(task)

    from hwsim.models.device import resolve_device
    from hwsim.models.training import torch_threads

    resolve_device(device)  # a GPU this machine lacks is bad input before any work

    try:
        with (
            open_executor(executor, workers, address, retries, threads) as runner,
            progress,
            torch_threads(threads),
        ):
            summary = run_sweep(
                spec, out_dir, force=force, on_point=on_point, executor=runner, device=device
            )
    except FailedPointsError as exc:  # reported once the workers and the display have closed
        exit_failed(exc)
    figure = write_sweep_figure(out_dir)  # drawn from the sweep.json just written
    if as_json:
        echo_json(summary)
        return
    if not quiet:
        console.print(sweep_table(summary))
        for note in spec.notes:
            console.print(f"note: {note}", highlight=False)
    console.print(
        f"{summary['points']} points → {out_dir / 'sweep.json'}, {figure}",
        highlight=False,
    )
