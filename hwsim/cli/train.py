"""``hwsim train``: train one network with one learning rule into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hwsim.cli import main
from hwsim.cli.common import (
    OUT_DIR,
    console,
    device_option,
    err_console,
    progress_bar,
    threads_option,
)
from hwsim.core.defaults import default_settings
from hwsim.core.rules import RULE_SYNTAX
from hwsim.core.units import format_number

#: The training defaults: the built-in default experiment (configs/experiments/default.yaml,
#: docs/learning.md "The default experiment"), read once; --help shows these values.
DEFAULTS = default_settings()


def _arch_default(field: str, arch: str) -> Any:
    """The default experiment's ``depth``/``width`` for its own architecture; for another one,
    None (that architecture's own: the cnn has 4 weight layers and 32 base channels)."""
    return DEFAULTS[field] if arch == DEFAULTS["model"] else None


@main.command()
@click.option("--algo", default="bp", show_default=True, help="Rule: " + RULE_SYNTAX + ".")
@click.option(
    "--dataset",
    default=DEFAULTS["dataset"],
    show_default=True,
    help="digits, mnist5k, mnist, fashion-mnist, cifar10 or synthetic.",
)
@click.option(
    "--model",
    "arch",
    type=click.Choice(["mlp", "cnn"]),
    default=DEFAULTS["model"],
    show_default=True,
    help="Network architecture.",
)
@click.option(
    "--depth",
    type=int,
    default=None,
    help=f"MLP weight layers, 2..10 [default: {DEFAULTS['depth'] or 4}; the cnn has 4].",
)
@click.option(
    "--width",
    type=int,
    default=None,
    help=f"MLP hidden width or CNN base channels, 1..8192 "
    f"[default: {DEFAULTS['width'] or 256} for the mlp, 32 for the cnn].",
)
@click.option(
    "--epochs", type=int, default=DEFAULTS["epochs"], show_default=True, help="1..100000."
)
@click.option(
    "--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True, help="1..65536."
)
@click.option(
    "--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Base learning rate, > 0."
)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam"]),
    default=DEFAULTS["optimizer"],
    show_default=True,
)
@click.option(
    "--momentum", type=float, default=DEFAULTS["momentum"], show_default=True, help="SGD momentum."
)
@click.option(
    "--schedule",
    type=click.Choice(["constant", "cosine", "step"]),
    default=DEFAULTS["schedule"],
    show_default=True,
    help="Learning-rate schedule.",
)
@click.option(
    "--weight-bits",
    type=int,
    default=DEFAULTS["weight_bits"],
    show_default=True,
    help="2..16, 32 = float.",
)
@click.option(
    "--act-bits",
    type=int,
    default=DEFAULTS["act_bits"],
    show_default=True,
    help="2..16, 32 = float.",
)
@click.option(
    "--feedback-bits",
    type=int,
    default=None,
    help="Bit width of B, 1..16 (1 = sign), 32 = float [default: --weight-bits].",
)
@click.option(
    "--forward-gain",
    type=float,
    default=DEFAULTS["forward_gain"],
    show_default=True,
    help="Init gain of W (1 = LeCun, 1.414 = He).",
)
@click.option(
    "--backward-gain",
    type=float,
    default=DEFAULTS["backward_gain"],
    help="Init gain of B [default: the scale of W]."
    if DEFAULTS["backward_gain"] is None
    else f"Init gain of B [default: {DEFAULTS['backward_gain']}].",
)
@click.option(
    "--train-size",
    type=int,
    default=DEFAULTS["train_size"],
    help="Use this many training samples [default: all]."
    if DEFAULTS["train_size"] is None
    else f"Use this many training samples [default: {DEFAULTS['train_size']}].",
)
@click.option(
    "--seed", type=int, default=DEFAULTS["seeds"][0], show_default=True, help="0..2^32-1."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=DEFAULTS["data_dir"],
    help="Folder with the mnist / fashion-mnist / cifar10 files.",
)
@click.option("--out", type=OUT_DIR, required=True, help="Run directory.")
@click.option("--force", is_flag=True, help="Start over when --out holds a different run.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--tensorboard/--no-tensorboard",
    default=None,
    help="Write TensorBoard events to --out/tensorboard [default: $HWSIM_TENSORBOARD, else on "
    "when the tensorboard package is installed].",
)
@device_option()
@threads_option()
def train(
    arch: str,
    data_dir: str | None,
    out: str,
    force: bool,
    quiet: bool,
    tensorboard: bool | None,
    device: str,
    threads: int,
    **options: Any,
) -> None:
    """Train one network with one learning rule; resumes an interrupted run in --out.

    The option defaults come from the built-in default experiment
    (configs/experiments/default.yaml): the MLP and data that `hwsim compare` trains, one rule
    and seed at a time.
    """
    from hwsim.core.errors import InputError
    from hwsim.models.config import TrainConfig, config_problems
    from hwsim.models.training import torch_threads
    from hwsim.models.training import train as run_training

    for field in ("depth", "width"):
        if options[field] is None:
            options[field] = _arch_default(field, arch)
    values = {
        "weight_decay": DEFAULTS["weight_decay"],  # no option: the default experiment's
        "model": arch,
        "data_dir": data_dir,
        **options,
    }
    problems = config_problems(values)
    if problems:  # every bad option at once, named as on the command line
        raise InputError(
            "; ".join(
                f"--{key.replace('_', '-')} {values[key]}: expected {expected}"
                for key, expected in problems
            )
        )
    config = TrainConfig(**values)
    progress = progress_bar(quiet)
    task = progress.add_task(f"{config.algo} epoch 1", total=None)
    epoch = 0

    def on_step(step: int, steps: int) -> None:
        progress.update(
            task, completed=step, total=steps, description=f"{config.algo} epoch {epoch + 1}"
        )

    def on_epoch(row: dict[str, Any]) -> None:
        nonlocal epoch
        epoch = row["epoch"]
        if not quiet:
            loss, acc = ".4f", ".3f"
            progress.console.print(
                f"epoch {row['epoch']:>3}  train loss {format_number(row['train_loss'], loss)}  "
                f"acc {format_number(row['train_accuracy'], acc)}  "
                f"test loss {format_number(row['test_loss'], loss)}  "
                f"acc {format_number(row['test_accuracy'], acc)}"
                + ("  [red]diverged[/]" if row["diverged"] else ""),
                highlight=False,
            )

    with progress, torch_threads(threads):
        result = run_training(
            config,
            Path(out),
            force=force,
            on_epoch=on_epoch,
            on_step=on_step,
            device=device,
            tensorboard=tensorboard,
        )
    if result.diverged:
        err_console.print(
            f"[yellow]{config.algo} diverged[/] after {result.epochs_completed} epoch(s); "
            f"the run ended cleanly and is marked diverged in {out}/metrics.jsonl",
            highlight=False,
        )
    console.print(
        f"{config.algo}: {result.status}, final test accuracy "
        f"{format_number(result.final_test_accuracy, '.4f')}, "
        f"best {format_number(result.best_test_accuracy, '.4f')} → {out}",
        highlight=False,
    )
