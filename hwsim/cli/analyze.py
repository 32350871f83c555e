"""``hwsim analyze WHAT RUN_DIR``: curvature, landscape, alignment or robustness of a training run.

Only parsing and printing live here: the analyses are :func:`hwsim.experiments.analysis.analyze`
(which writes the JSON), the figures :func:`hwsim.render.analysis.write_analysis_figure` (which
draws each PNG from that JSON). Torch, the learning side and matplotlib are imported inside the
command only, so ``hwsim --help`` stays light.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console, echo_json, progress_bar, threads_option
from hwsim.core.units import format_number

_CHOICES = ("hessian", "landscape", "alignment", "robustness", "all")
#: ``hwsim.models.device.DEVICE_CHOICES``, spelled out so that ``hwsim --help`` does not import
#: torch (a test checks the two agree).
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: Number formats of the summaries: values to 4 significant digits, standard errors to 2.
_SIG, _ERR = ".4g", ".2g"


def _number_list(text: str, convert: type, option: str) -> list[Any]:
    try:
        return [convert(part) for part in text.split(",") if part.strip()]
    except ValueError:
        kind = "integers" if convert is int else "numbers"
        raise InputError(f"{option} expects comma-separated {kind}, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _print_hessian(result: dict[str, Any]) -> None:
    console.print(
        f"[bold]hessian[/] {result['rule']} epoch {result['epoch']} (BP view, "
        f"{result['data']['samples']} training samples, {result['probes']} probes, "
        f"seed {result['seed']}): trace {format_number(result['trace'], _SIG)} ± "
        f"{format_number(result['trace_stderr'], _ERR)}, top eigenvalues "
        + ", ".join(format_number(v, _SIG) for v in result["top_eigenvalues"]),
        highlight=False,
    )
    if result["by_epoch"]:
        table = Table("epoch", "loss", "trace", "± stderr", "top eigenvalue")
        for epoch, entry in result["by_epoch"].items():
            table.add_row(
                epoch,
                format_number(entry["loss"], _SIG),
                format_number(entry["trace"], _SIG),
                format_number(entry["trace_stderr"], _ERR),
                format_number(entry["top_eigenvalues"][0], _SIG),
            )
        console.print(table)
    at = result.get("at_loss")  # absent in files written before --at-loss existed
    if at:
        console.print(f"  {at_loss_text(at)}", highlight=False, soft_wrap=True)


def at_loss_text(at: dict[str, Any]) -> str:
    """One line on an ``at_loss`` block of ``hessian.json``: what was measured where, or why not."""
    head = f"at training loss ≤ {at['level']:g}:"
    curvature = at.get("curvature")
    if at["status"] != "measured" or not curvature:
        return f"{head} {at['note']}"
    return (
        f"{head} epoch {at['epoch']} (training loss {format_number(at['train_loss'], _SIG)}, "
        f"{at['weights']}): trace {format_number(curvature['trace'], _SIG)} ± "
        f"{format_number(curvature['trace_stderr'], _ERR)}, top eigenvalues "
        + ", ".join(format_number(v, _SIG) for v in curvature["top_eigenvalues"])
    )


def _print_landscape(result: dict[str, Any]) -> None:
    eigen = result["surface"]["direction_eigenvalues"] or []
    console.print(
        f"[bold]landscape[/] {result['rule']} epoch {result['epoch']}: loss "
        f"{format_number(result['center_loss'], _SIG)} at the trained weights, up to "
        f"+{format_number(result['max_loss_increase'], _SIG)} within ±{result['span']:g} "
        f"along the top-2 eigenvectors (λ = {', '.join(format_number(v, _SIG) for v in eigen)})",
        highlight=False,
    )
    trajectory = result["trajectory"]
    if trajectory:
        ev = trajectory["explained_variance"]
        console.print(
            f"  trajectory over epochs {trajectory['epochs'][0]}–{trajectory['epochs'][-1]}: "
            f"PC1 {100 * ev[0]:.1f}%, PC2 {100 * ev[1]:.1f}% of the path; loss "
            f"{format_number(trajectory['path_loss'][0], _SIG)} → "
            f"{format_number(trajectory['path_loss'][-1], _SIG)}",
            highlight=False,
        )
    else:
        console.print(f"  trajectory: {result['trajectory_note']}", highlight=False)


def _print_alignment(result: dict[str, Any]) -> None:
    epochs = result["epochs"]
    table = Table(
        "layer",
        f"W∠B epoch {epochs[0]}",
        f"W∠B epoch {epochs[-1]}",
        f"update∠gradient epoch {epochs[-1]}",
        title=f"alignment ({result['rule']}, degrees, from metrics.jsonl)",
    )
    for layer in result["layers"]:
        angles = result["alignment_deg"][layer]
        table.add_row(
            layer,
            format_number(angles[0], _SIG),
            format_number(angles[-1], _SIG),
            format_number(result["update_angle_deg"][layer][-1], _SIG),
        )
    console.print(table)
    if result["note"]:
        console.print(f"  {result['note']}", highlight=False)


def _print_robustness(result: dict[str, Any]) -> None:
    console.print(
        f"[bold]robustness[/] {result['rule']} epoch {result['epoch']} "
        f"({result['data']['samples']} test samples, seed {result['seed']}): clean accuracy "
        f"{result['clean_accuracy']:.4f}, mean under corruptions "
        f"{format_number(result['mean_corruption_accuracy'], _SIG)}",
        highlight=False,
    )
    if result["corruptions_skipped"]:
        console.print(f"  corruptions skipped: {result['corruptions_skipped']}", highlight=False)
    table = Table("attack", "gradient", *(f"ε={e:g}" for e in result["eps"]))
    for attack, by_source in result["adversarial_accuracy"].items():
        for source, values in by_source.items():
            table.add_row(attack, source, *(f"{v:.3f}" for v in values))
    console.print(table)
    surrogate = result["surrogate"]
    console.print(
        f"  transfer surrogate: {surrogate['rule']} seed {surrogate['seed']} in {surrogate['dir']}"
        + (" (trained here)" if surrogate["trained_here"] else ""),
        highlight=False,
    )


_PRINTERS = {
    "hessian": _print_hessian,
    "landscape": _print_landscape,
    "alignment": _print_alignment,
    "robustness": _print_robustness,
}


@main.command()
@click.argument("what", type=click.Choice(_CHOICES))
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--epochs", default=None, help="hessian: also at these epochs, e.g. 0,5,10, or 'all'."
)
@click.option(
    "--at-loss",
    type=float,
    default=None,
    help="hessian: also at the first epoch whose training loss is ≤ this (needs snapshots).",
)
@click.option(
    "--samples",
    type=int,
    default=None,
    help="Data samples used: first N training (hessian, landscape) or test (robustness) "
    "[default: 1000].",
)
@click.option(
    "--batch-size", type=int, default=None, help="Batch size of the Hessian data [default: 250]."
)
@click.option("--probes", type=int, default=None, help="hessian: Hutchinson probes [default: 100].")
@click.option("--top-k", type=int, default=None, help="hessian: eigenvalues to find [default: 5].")
@click.option("--slq/--no-slq", default=None, help="hessian: spectral density [default: on].")
@click.option(
    "--grid", type=int, default=None, help="landscape: grid points per axis [default: 21]."
)
@click.option(
    "--span",
    type=float,
    default=None,
    help="landscape: grid half-width, a parameter-space distance "
    "[default: where the loss rises --rise].",
)
@click.option(
    "--rise",
    type=float,
    default=None,
    help="landscape: loss rise that sizes the grid [default: 1.0].",
)
@click.option("--eps", default=None, help="robustness: L∞ radii [default: 0,0.01,0.03,0.1,0.2].")
@click.option("--attacks", default=None, help="robustness: fgsm,pgd [default: both].")
@click.option("--pgd-steps", type=int, default=None, help="robustness: PGD steps [default: 10].")
@click.option(
    "--corruptions", default=None, help="robustness: comma-separated names [default: all 7]."
)
@click.option(
    "--surrogate",
    type=click.Path(file_okay=False),
    default=None,
    help="robustness: BP run to transfer from "
    "[default: train one into RUN_DIR/analysis/surrogate].",
)
@click.option("--seed", type=int, default=None, help="Seed of probes, starts, noise [default: 0].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the run's mnist / fashion-mnist / cifar10 files are now, if they moved "
    "[default: where the run read them].",
)
@click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where the model and data go: auto is the GPU when torch sees one.",
)
@threads_option()
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON instead.")
def analyze(
    what: str,
    run_dir: str,
    epochs: str | None,
    eps: str | None,
    attacks: str | None,
    corruptions: str | None,
    surrogate: str | None,
    data_dir: str | None,
    device: str,
    threads: int,
    as_json: bool,
    **numbers: Any,
) -> None:
    """Analyze a `hwsim train` run; writes RUN_DIR/analysis/WHAT.json and WHAT.png.

    Every gradient-based analysis runs on the BP view (true gradients) of the model.
    """
    from hwsim.experiments.analysis import analysis_files, analysis_names
    from hwsim.experiments.analysis import analyze as run_analysis
    from hwsim.models.device import resolve_device
    from hwsim.models.training import torch_threads
    from hwsim.render.analysis import write_analysis_figure

    options: dict[str, Any] = {k: v for k, v in numbers.items() if v is not None}
    # Resolved first: CUDA asked for on a machine without one is exit 2 before any work.
    # Alignment only reads metrics.jsonl, so it takes no device.
    resolved = resolve_device(device)
    if what != "alignment":
        options["device"] = resolved
        if data_dir is not None:
            options["data_dir"] = data_dir
    if epochs is not None:
        options["epochs"] = (
            "all" if epochs.strip() == "all" else _number_list(epochs, int, "--epochs")
        )
    if eps is not None:
        options["eps_list"] = _number_list(eps, float, "--eps")
    if attacks is not None:
        options["attacks"] = _names(attacks)
    if corruptions is not None:
        options["corruptions"] = _names(corruptions)
    if surrogate is not None:
        options["surrogate_dir"] = surrogate
    # One step per analysis (its JSON and its figure): the bar's total, so it shows an ETA.
    progress = progress_bar(quiet=False)
    task = progress.add_task(f"analyze {what}", total=len(analysis_names(what)))

    def done(name: str, _: dict[str, Any]) -> None:
        write_analysis_figure(run_dir, name)
        progress.advance(task)

    with progress, torch_threads(threads):
        result = run_analysis(run_dir, what, on_done=done, **options)
    results = result if what == "all" else {what: result}
    if as_json:
        echo_json(result, indent=1)
        return
    for name, one in results.items():
        _PRINTERS[name](one)
        json_path, png_path = analysis_files(run_dir, name)
        console.print(f"  → {json_path}, {png_path}", highlight=False, soft_wrap=True)
