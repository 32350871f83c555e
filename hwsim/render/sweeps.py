"""The figure of a sweep (``OUT/<kind>.png``), drawn from its ``sweep.json`` alone.

:func:`write_sweep_figure` reads the aggregates that :func:`hwsim.experiments.sweeps.run_sweep`
saved (docs/reproduce.md, "The sweep directory") and draws them in the one figure style
(:mod:`hwsim.render.style`), so ``<kind>.png`` can be redrawn without the run directories or the
learning side. Error bars are mean ± the sample standard deviation over seeds, as saved.

=========== =========================================================================
kind        figure
=========== =========================================================================
angle       accuracy, alignment and learning curves, curvature (and robustness) vs θ
depth, data final test accuracy per rule vs the parameter (× marks diverged seeds)
init        heat map of final train accuracy over forward × backward gain, per rule
rules       one bar per rule for each measured metric
=========== =========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, write_atomic
from hwsim.core.outputs import SWEEP_SUMMARY_FILE
from hwsim.core.stats import finite
from hwsim.core.units import MISSING
from hwsim.render.style import draw_png, rule_colors

__all__ = ["LOG_METRICS", "SUMMARY_FILE", "sweep_figure", "write_sweep_figure"]

#: The aggregates of a sweep directory, the one input of its figure.
SUMMARY_FILE = SWEEP_SUMMARY_FILE
#: Curvature spans orders of magnitude across rules and angles: plotted on a log axis.
LOG_METRICS = ("hessian_trace", "top_eigenvalue")
_KINDS = ("angle", "depth", "data", "init", "rules")


# --------------------------------------------------------------------------- pieces


def _errorbar(ax: Any, xs: list[Any], groups: list[dict[str, Any]], metric: str, **kw: Any) -> Any:
    """Mean ± std of ``metric`` per group at ``xs`` (groups without a mean are left out)."""
    keep = [(x, g) for x, g in zip(xs, groups, strict=True) if g["metrics"].get(metric)]
    keep = [(x, g) for x, g in keep if g["metrics"][metric]["mean"] is not None]
    if not keep:
        return None
    return ax.errorbar(
        [x for x, _ in keep],
        [g["metrics"][metric]["mean"] for _, g in keep],
        yerr=[g["metrics"][metric]["std"] or 0.0 for _, g in keep],
        marker="o",
        capsize=3,
        **kw,
    )


def _mark_diverged(ax: Any, xs: list[Any], groups: list[dict[str, Any]], color: Any) -> None:
    """An × and "k/n div." at each group with diverged seeds."""
    for x, g in zip(xs, groups, strict=True):
        if g["diverged"]:
            mean = g["metrics"]["final_test_accuracy"]["mean"]
            ax.plot([x], [mean], marker="x", color=color, markersize=11, mew=2)
            ax.annotate(
                f"{g['diverged']}/{len(g['seeds'])} div.",
                (x, mean),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )


def _by_rule(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for g in summary["groups"]:
        out.setdefault(g["rule"], []).append(g)
    return out


def _all_positive(values: Iterable[Any]) -> bool:
    values = list(values)
    return bool(values) and all(finite(v) and v > 0 for v in values)


# --------------------------------------------------------------------------- one figure per kind


def _angle_figure(summary: dict[str, Any]) -> Any:
    groups = summary["groups"]
    thetas = [g["value"] for g in groups]
    robust = any("pgd_true_accuracy" in g["metrics"] for g in groups)
    fig, axes = plt.subplots(2, 3 if robust else 2, figsize=(15 if robust else 10.5, 7.5))
    axes = axes.flatten()
    cmap = plt.get_cmap("viridis")
    colors = [cmap(i / max(1, len(groups) - 1)) for i in range(len(groups))]
    ax = axes[0]
    _errorbar(ax, thetas, groups, "final_test_accuracy", color="#4C72B0", label="final")
    _errorbar(ax, thetas, groups, "best_test_accuracy", color="#999999", ls="--", label="best")
    ax.set(xlabel="initial angle θ (deg)", ylabel="test accuracy", title="Accuracy vs θ")
    ax.legend()
    for ax, name, title in (
        (axes[1], "alignment_deg_mean", "W-vs-B angle over training (mean over layers)"),
        (axes[2], "test_accuracy", "Learning curves (test accuracy)"),
    ):
        for g, color in zip(groups, colors, strict=True):
            if g["curves"]:
                c = g["curves"]
                ax.plot(c["epoch"], c[f"{name}_mean"], color=color, label=f"θ={g['value']:g}")
        ax.set(xlabel="epoch (0 = init)", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[1].set_ylabel("degrees")
    axes[2].set_ylabel("test accuracy")
    ax = axes[3]
    means = [(g["metrics"].get(m) or {}).get("mean") for g in groups for m in LOG_METRICS]
    log = _all_positive(means)
    if _errorbar(ax, thetas, groups, "hessian_trace", color="#4C72B0", label="trace"):
        ax.set_ylabel("Hessian trace", color="#4C72B0")
        ax.set_yscale("log" if log else "linear")
        twin = ax.twinx()
        _errorbar(twin, thetas, groups, "top_eigenvalue", color="#C44E52", label="top eig.")
        twin.set_ylabel("top eigenvalue", color="#C44E52")
        twin.set_yscale("log" if log else "linear")
        twin.grid(False)
    title = "Curvature at the end (BP view" + (", log)" if log else ")")
    ax.set(xlabel="initial angle θ (deg)", title=title)
    if robust:
        ax = axes[4]
        sources = (("true", "#C44E52"), ("feedback", "#DD8452"), ("transfer", "#8172B3"))
        for source, source_color in sources:
            _errorbar(
                ax, thetas, groups, f"pgd_{source}_accuracy", color=source_color, label=source
            )
        ax.set(xlabel="initial angle θ (deg)", ylabel="accuracy", title="PGD (mean over ε > 0)")
        ax.legend(fontsize=7)
        ax = axes[5]
        _errorbar(ax, thetas, groups, "corruption_accuracy", color="#55A868", label="corrupted")
        _errorbar(ax, thetas, groups, "clean_accuracy", color="#999999", ls="--", label="clean")
        ax.set(xlabel="initial angle θ (deg)", ylabel="accuracy", title="Corruptions (mean)")
        ax.legend(fontsize=7)
    return fig


def _line_figure(summary: dict[str, Any], xlabel: str, log_x: bool) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    by_rule = _by_rule(summary)
    colors = rule_colors(list(by_rule))
    for rule, groups in by_rule.items():
        xs = [g["value"] for g in groups]
        _errorbar(ax, xs, groups, "final_test_accuracy", color=colors[rule], label=rule)
        _mark_diverged(ax, xs, groups, colors[rule])
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="final test accuracy (mean ± std over seeds)")
    ax.set_title(f"{summary['kind']} sweep on {summary['spec']['base']['dataset']} (× = diverged)")
    ax.legend()
    return fig


def _init_figure(summary: dict[str, Any]) -> Any:
    by_rule = _by_rule(summary)
    gains = sorted({g["value"][0] for g in summary["groups"]})
    fig, axes = plt.subplots(
        1,
        len(by_rule),
        figsize=(4.6 * len(by_rule) + 1.2, 4.4),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, (rule, groups) in zip(axes[0], by_rule.items(), strict=True):
        grid = [[math.nan] * len(gains) for _ in gains]
        for g in groups:
            mean = g["metrics"].get("final_train_accuracy", {}).get("mean")
            i, j = gains.index(g["value"][1]), gains.index(g["value"][0])
            grid[i][j] = math.nan if mean is None else mean
            label = MISSING if mean is None else f"{mean:.2f}"
            if g["diverged"]:
                label += "\n(div.)"
            dark = mean is None or mean < 0.6  # viridis is dark below ~0.6
            ax.text(
                j,
                i,
                label,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
        image = ax.imshow(grid, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(gains)), [f"{v:g}" for v in gains])
        ax.set_yticks(range(len(gains)), [f"{v:g}" for v in gains])
        ax.set(xlabel="forward gain", title=f"{rule}: final train accuracy")
        if ax is axes[0][0]:
            ax.set_ylabel("backward gain")
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="final train accuracy (mean over seeds)")
    return fig


def _rules_figure(summary: dict[str, Any]) -> Any:
    groups = summary["groups"]
    rules = [g["rule"] for g in groups]
    colors = rule_colors(rules)
    panels = [("final_test_accuracy", "final test accuracy")]
    if any("hessian_trace" in g["metrics"] for g in groups):
        panels += [("hessian_trace", "Hessian trace (BP view)"), ("top_eigenvalue", "top eig.")]
    if any("pgd_true_accuracy" in g["metrics"] for g in groups):
        panels += [
            ("pgd_true_accuracy", "PGD, true gradient"),
            ("pgd_transfer_accuracy", "PGD, transfer"),
            ("corruption_accuracy", "corruptions"),
        ]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flatten()[len(panels) :]:
        ax.set_visible(False)
    for ax, (metric, title) in zip(axes.flatten(), panels, strict=False):
        stats = [g["metrics"].get(metric) or {} for g in groups]
        if metric in LOG_METRICS and _all_positive(s.get("mean") for s in stats):
            ax.set_yscale("log")
            title += " (log)"
        ax.bar(
            range(len(rules)),
            [s.get("mean") or 0.0 for s in stats],
            yerr=[s.get("std") or 0.0 for s in stats],
            capsize=3,
            color=[colors[rule] for rule in rules],
        )
        ax.set_xticks(range(len(rules)), rules, rotation=30)
        ax.set_title(title)
    return fig


def _figure(summary: dict[str, Any]) -> Any:
    kind = summary["kind"]
    if kind == "angle":
        fig = _angle_figure(summary)
    elif kind == "depth":
        fig = _line_figure(summary, "depth (weight layers)", log_x=False)
    elif kind == "data":
        fig = _line_figure(summary, "training samples", log_x=True)
    elif kind == "init":
        fig = _init_figure(summary)
    else:
        fig = _rules_figure(summary)
    if kind != "init":  # the heat maps use a constrained layout (shared colorbar)
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- public


def _check_summary(summary: Any, where: str) -> dict[str, Any]:
    if not isinstance(summary, dict) or not isinstance(summary.get("groups"), list):
        raise InputError(f"{where}: no sweep aggregates (a 'groups' list); expected a sweep.json")
    if summary.get("kind") not in _KINDS:
        raise InputError(
            f"{where}: unknown sweep kind {summary.get('kind')!r}; "
            f"expected one of {', '.join(_KINDS)}"
        )
    return summary


def sweep_figure(summary: dict[str, Any]) -> bytes:
    """The figure of a sweep as PNG bytes, from its ``sweep.json`` document ``summary``.

    Drawn in the one figure style (:mod:`hwsim.render.style`): the same summary gives the same
    bytes. An unknown ``kind`` is an :class:`InputError`.
    """
    return draw_png(_figure, _check_summary(summary, "sweep summary"))


def write_sweep_figure(sweep_dir: str | Path, summary: dict[str, Any] | None = None) -> Path:
    """Draw ``sweep_dir/<kind>.png`` from ``sweep_dir/sweep.json``; returns its path.

    Needs nothing of the sweep but its aggregates: the runs and ``points.jsonl`` may be gone.
    ``summary`` is that document when the caller already holds it (``reproduce`` passes the
    copy in ``reproduction.json``). The PNG is written atomically; a missing or unreadable
    ``sweep.json`` is an :class:`InputError` naming it.
    """
    sweep_dir = Path(sweep_dir)
    if summary is None:
        path = sweep_dir / SUMMARY_FILE
        document = read_json(path, "the sweep.json of a sweep (hwsim sweep)")
        summary = _check_summary(document, str(path))
    png = sweep_figure(summary)
    target = sweep_dir / f"{summary['kind']}.png"
    write_atomic(target, png)
    return target
