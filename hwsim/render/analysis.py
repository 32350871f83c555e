"""Figures of the per-run analyses: ``RUN_DIR/analysis/<what>.png`` drawn from ``<what>.json``.

Torch-free: every figure is drawn from the result dictionary that
:mod:`hwsim.experiments.analysis` saved, never recomputed, so a figure can be redrawn from the
JSON alone (no checkpoint, no snapshots, no torch). Figures use the one style of
:mod:`hwsim.render.style`: the same JSON gives the same PNG bytes.

- ``hessian.png``: the spectral density (log scale) with the top eigenvalues dashed, and with
  several epochs the trace (± stderr) and top eigenvalue over training.
- ``landscape.png``: the loss around the trained weights along the top-2 Hessian eigenvectors,
  and with a trajectory the path on its PCA plane over that plane's loss and the loss along it.
- ``alignment.png``: the W-vs-B angle and the update-vs-gradient angle per layer over training.
- ``robustness.png``: accuracy under corruptions per severity, and adversarial accuracy per ε
  for each attack and gradient source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, write_atomic
from hwsim.core.outputs import ANALYSIS_DIR
from hwsim.render.style import draw_png

__all__ = ["ANALYSIS_FIGURES", "analysis_figure_path", "analysis_png", "write_analysis_figure"]

#: Where a run directory keeps analysis results (the same folder the analyses write into).
_EXPECTED = "an analysis result written by `hwsim analyze` (docs/analyses.md)"


def analysis_figure_path(run_dir: str | Path, what: str) -> Path:
    """Where the figure of analysis ``what`` goes: ``RUN_DIR/analysis/<what>.png``."""
    return Path(run_dir) / ANALYSIS_DIR / f"{what}.png"


def analysis_png(result: dict[str, Any]) -> bytes:
    """The PNG bytes of the figure of one saved analysis result (its ``analysis`` names which).

    An unknown or missing ``analysis`` name is an :class:`InputError`.
    """
    what = result.get("analysis") if isinstance(result, dict) else None
    if what not in ANALYSIS_FIGURES:
        raise InputError(
            f"not an analysis result: 'analysis' is {what!r}, "
            f"expected one of {', '.join(ANALYSIS_FIGURES)}"
        )
    return draw_png(ANALYSIS_FIGURES[what], result)


def write_analysis_figure(run_dir: str | Path, what: str) -> Path:
    """Draw ``RUN_DIR/analysis/<what>.png`` from ``<what>.json`` alone; return the PNG's path.

    ``what`` is one of :data:`ANALYSIS_FIGURES`. The PNG is written atomically (``name.tmp``
    then ``os.replace``). A missing or unreadable JSON file, one holding another analysis, or one
    that lacks what the figure shows is an :class:`InputError` naming the file; no PNG is written
    then.
    """
    if what not in ANALYSIS_FIGURES:
        raise InputError(f"unknown analysis {what!r}: choose from {', '.join(ANALYSIS_FIGURES)}")
    json_path = Path(run_dir) / ANALYSIS_DIR / f"{what}.json"
    result = read_json(json_path, _EXPECTED)
    found = result.get("analysis") if isinstance(result, dict) else None
    if found != what:
        raise InputError(f"{json_path}: holds analysis {found!r}, expected {what!r}")
    try:
        png = analysis_png(result)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(
            f"{json_path}: cannot draw it ({type(e).__name__}: {e}); expected {_EXPECTED}"
        ) from None
    path = analysis_figure_path(run_dir, what)
    write_atomic(path, png)
    return path


# --------------------------------------------------------------------------- figures


def _epoch_axis(ax: Any) -> None:
    ax.set_xlabel("epoch (0 = before training)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _at_loss_line(at: dict[str, Any] | None) -> str:
    """A title line on the curvature at the loss level (none for files without one)."""
    if not at:
        return ""
    head = f"\nat training loss ≤ {at['level']:g}: "
    curvature = at.get("curvature")
    if at["status"] != "measured" or not curvature:
        return head + str(at["note"])
    return head + (
        f"epoch {at['epoch']} (loss {at['train_loss']:.3g}), trace {curvature['trace']:.4g}, "
        f"top eigenvalue {curvature['top_eigenvalues'][0]:.4g}"
    )


def _hessian_figure(result: dict[str, Any]) -> Figure:
    by_epoch = result["by_epoch"]
    over_time = len(by_epoch) >= 2
    fig, axes = plt.subplots(1, 2 if over_time else 1, figsize=(11 if over_time else 6.5, 4))
    axes = list(axes) if over_time else [axes]
    ax = axes[0]
    density = result["density"]
    if density is not None:
        grid = density["grid"]
        floor = max(max(density["density"]) * 1e-8, 1e-300)
        ax.semilogy(grid, [max(d, floor) for d in density["density"]], color="#4C72B0")
        ax.set_ylim(bottom=floor * 10)
        ax.set_ylabel("density (smoothed, log scale)")
    else:
        ax.set_yticks([])
    for value in result["top_eigenvalues"]:
        ax.axvline(value, color="#C44E52", lw=0.8, ls="--")
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_title(
        f"{result['rule']} epoch {result['epoch']}: spectrum (BP view)\n"
        f"trace {result['trace']:.4g} ± {result['trace_stderr'] or 0:.2g}, "
        f"top eigenvalues dashed" + _at_loss_line(result.get("at_loss"))
    )
    if over_time:
        ax = axes[1]
        epochs = [int(e) for e in by_epoch]
        traces = [by_epoch[str(e)]["trace"] for e in epochs]
        errors = [by_epoch[str(e)]["trace_stderr"] or 0.0 for e in epochs]
        ax.errorbar(epochs, traces, yerr=errors, color="#4C72B0", marker="o", label="trace")
        ax.set_ylabel("trace", color="#4C72B0")
        twin = ax.twinx()
        twin.plot(
            epochs,
            [by_epoch[str(e)]["top_eigenvalues"][0] for e in epochs],
            color="#C44E52",
            marker="s",
        )
        twin.set_ylabel("top eigenvalue", color="#C44E52")
        twin.grid(False)
        _epoch_axis(ax)
        ax.set_title("Trace (± stderr) and top eigenvalue over training")
    fig.tight_layout()
    return fig


def _log_levels(low: float, high: float, count: int) -> list[float]:
    """``count`` levels evenly spaced in log10 from ``low`` to ``high``, both included.

    Computed as ``torch.logspace`` computes them in float32 (the exponents rounded to float32,
    the powers in double from both ends, the results rounded to float32), which is how these
    figures were drawn before rendering moved here: the same JSON still gives the same PNG bytes.
    """
    start, stop = np.float32(math.log10(low)), np.float32(math.log10(high))
    step = float(stop - start) / (count - 1)
    half = count // 2
    exponents = [
        float(start) + step * i if i < half else float(stop) - step * (count - 1 - i)
        for i in range(count)
    ]
    return [float(np.float32(10.0**x)) for x in exponents]


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def _contour(fig: Any, ax: Any, xs: list[float], ys: list[float], loss: list[list[float]]) -> None:
    """Filled contours of ``loss[i][j]`` at ``(xs[i], ys[j])``, with a colour bar."""
    if len(xs) < 2 or len(ys) < 2:
        return
    # Rows along y; a loss saved as null (not finite) is left blank.
    z = [[_nan_if_none(loss[i][j]) for i in range(len(xs))] for j in range(len(ys))]
    values = [v for row in z for v in row if math.isfinite(v)]
    low, high = min(values, default=0.0), max(values, default=0.0)
    if low > 0 and high / low > 20:
        # A far corner can be 100x the basin's loss: log levels keep the basin visible.
        levels = _log_levels(low, high, 21)
        filled = ax.contourf(xs, ys, z, levels=levels, norm=LogNorm(low, high), cmap="viridis")
        fig.colorbar(filled, ax=ax, label="loss (log scale)", ticks=levels[::4], format="%.3g")
    else:
        filled = ax.contourf(xs, ys, z, levels=20, cmap="viridis")
        fig.colorbar(filled, ax=ax, label="loss", format="%.3g")


def _landscape_figure(result: dict[str, Any]) -> Figure:
    trajectory = result["trajectory"]
    fig, axes = plt.subplots(1, 3 if trajectory else 1, figsize=(15 if trajectory else 6, 4.2))
    axes = list(axes) if trajectory else [axes]
    surface = result["surface"]
    ax = axes[0]
    _contour(fig, ax, surface["alphas"], surface["betas"], surface["loss"])
    ax.plot([0], [0], marker="*", color="white", markersize=12, markeredgecolor="black")
    eigen = surface.get("direction_eigenvalues") or [math.nan, math.nan]
    ax.set_xlabel(f"α along top eigenvector 1 (λ = {eigen[0]:.3g})")
    ax.set_ylabel(f"β along eigenvector 2 (λ = {eigen[1]:.3g})")
    ax.set_title(f"{result['rule']}: loss around the trained weights")
    if trajectory:
        ax = axes[1]
        tsurf = trajectory["surface"]
        _contour(fig, ax, tsurf["alphas"], tsurf["betas"], tsurf["loss"])
        xs = [c[0] for c in trajectory["coordinates"]]
        ys = [c[1] for c in trajectory["coordinates"]]
        ax.plot(xs, ys, color="white", marker="o", markeredgecolor="black", lw=1.5)
        for epoch, px, py in zip(trajectory["epochs"], xs, ys, strict=True):
            ax.annotate(str(epoch), (px, py), textcoords="offset points", xytext=(4, 4))
        ev = trajectory["explained_variance"]
        ax.set_xlabel(f"PC 1 ({100 * ev[0]:.1f}% of the path)")
        ax.set_ylabel(f"PC 2 ({100 * ev[1]:.1f}%)")
        ax.set_title("Training trajectory on its top-2 PCA plane")
        ax = axes[2]
        ax.plot(trajectory["epochs"], trajectory["path_loss"], marker="o")
        _epoch_axis(ax)
        ax.set_ylabel("loss at the snapshot")
        ax.set_title("Loss along the trajectory")
    fig.tight_layout()
    return fig


def _alignment_figure(result: dict[str, Any]) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = result["epochs"]
    for key, ax, title in (
        ("alignment_deg", axes[0], "Angle between W and B"),
        ("update_angle_deg", axes[1], "Angle between update and true gradient"),
    ):
        for layer, values in result[key].items():
            points = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=f"layer {layer}")
        _epoch_axis(ax)
        ax.set_ylabel("degrees")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{result['rule']}: {title}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        elif result["note"]:
            ax.text(
                0.5,
                0.5,
                result["note"],
                ha="center",
                va="center",
                wrap=True,
                fontsize=8,
                transform=ax.transAxes,
            )
    fig.tight_layout()
    return fig


def _robustness_figure(result: dict[str, Any]) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    if result["corruption_accuracy"]:
        for name, values in result["corruption_accuracy"].items():
            ax.plot(result["severities"], values, marker="o", label=name)
        ax.axhline(result["clean_accuracy"], color="black", ls=":", label="clean")
        ax.set_xlabel("severity")
        ax.set_xticks(result["severities"])
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(
            0.5,
            0.5,
            result["corruptions_skipped"] or "no corruptions asked for",
            ha="center",
            va="center",
            wrap=True,
            fontsize=8,
            transform=ax.transAxes,
        )
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{result['rule']}: accuracy under corruptions")
    ax = axes[1]
    colors = {"true": "#C44E52", "feedback": "#4C72B0", "transfer": "#55A868"}
    styles = {"fgsm": "--", "pgd": "-"}
    for attack, by_source in result["adversarial_accuracy"].items():
        for source, values in by_source.items():
            ax.plot(
                result["eps"],
                values,
                color=colors.get(source),
                ls=styles.get(attack, "-"),
                marker="o",
                label=f"{attack} {source}",
            )
    ax.set_xlabel("ε (L∞)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Adversarial accuracy: true gradient, own feedback, transfer")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


#: The figure drawer of each analysis, by the name ``hwsim analyze`` takes.
ANALYSIS_FIGURES: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "hessian": _hessian_figure,
    "landscape": _landscape_figure,
    "alignment": _alignment_figure,
    "robustness": _robustness_figure,
}
