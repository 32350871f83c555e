"""The figure of a chip sweep (``OUT/chip.png``), drawn from its ``sweep.json`` alone.

Three panels against the first swept parameter: energy per step, latency per step and the
transport share (weight transport and mirror synchronization ÷ energy, docs/simulator.md,
"Editing a chip"), one colour per rule. With more parameters, each combination of the others
gets its own line style and a legend entry. The x axis is logarithmic when the values are
numbers spanning more than 10×, categorical when they are not numbers.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, write_atomic
from hwsim.core.outputs import SWEEP_SUMMARY_FILE
from hwsim.render.style import draw_png, rule_colors

__all__ = ["FIGURE_FILE", "chip_sweep_figure", "write_chip_sweep_figure"]

#: The figure's file name in the sweep directory.
FIGURE_FILE = "chip.png"
_FORMAT = "hwsim-chip-sweep"
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: (record key, axis label, scale) of each panel.
_PANELS = (
    ("energy_pj", "energy / step (µJ)", 1e-6),
    ("latency_s", "latency / step (ms)", 1e3),
    ("transport_share", "W to error unit: transport + mirror sync (% of energy)", 100.0),
)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each key by its last part (``read_energy_pj``) unless two would then look the same."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def _figure(summary: dict[str, Any]) -> Any:
    parameters = summary["parameters"]
    keys = [p["key"] for p in parameters]
    x_key, x_values = keys[0], parameters[0]["values"]
    numeric = all(_is_number(v) for v in x_values)
    positions = x_values if numeric else list(range(len(x_values)))
    log_x = numeric and min(x_values) > 0 and max(x_values) > 10 * min(x_values)
    others = [p["values"] for p in parameters[1:]]
    combos = list(itertools.product(*others)) if others else [()]
    short = _short_keys(keys)
    rules = summary["rules"]
    colors = rule_colors(rules)
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(5.2 * len(_PANELS), 4.3), squeeze=False)

    def record(x: Any, combo: tuple[Any, ...], rule: str) -> dict[str, Any] | None:
        wanted = dict(zip(keys, (x, *combo), strict=True))
        for point in summary["points"]:
            if point["values"] == wanted:
                found: dict[str, Any] = point["rules"].get(rule)
                return found
        return None

    for ax, (field, label, scale) in zip(axes[0], _PANELS, strict=True):
        for k, rule in enumerate(rules):
            for n, combo in enumerate(combos):
                ys = []
                for x in x_values:
                    r = record(x, combo, rule)
                    value = None if r is None else r.get(field)
                    ys.append(float("nan") if value is None else value * scale)
                name = rule
                if combo:
                    name += ", " + ", ".join(
                        f"{short[k]}={_text(v)}" for k, v in zip(keys[1:], combo, strict=True)
                    )
                ax.plot(
                    positions,
                    ys,
                    color=colors[rule],
                    linestyle=_STYLES[n % len(_STYLES)],
                    marker=_MARKERS[n % len(_MARKERS)],
                    label=name,
                    # later rules thinner and on top: rules with equal numbers all stay visible
                    linewidth=max(0.8, 2.4 - 0.5 * k),
                    markersize=max(3.0, 8.0 - 2.0 * k),
                    zorder=2 + k,
                )
        if log_x:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(positions, [_text(v) for v in x_values], rotation=20)
        ax.set(xlabel=x_key, ylabel=label)
        ax.set_title(label.split(" (")[0])
    axes[0][0].legend(fontsize=7)
    chip = summary.get("chip", {}).get("name", "chip")
    fig.suptitle(f"chip sweep on {chip}: {', '.join(keys)}", fontsize=10)
    fig.tight_layout()
    return fig


def _check(summary: Any, where: str) -> dict[str, Any]:
    if (
        not isinstance(summary, dict)
        or summary.get("format") != _FORMAT
        or not summary.get("parameters")
        or not isinstance(summary.get("points"), list)
        or not isinstance(summary.get("rules"), list)
    ):
        raise InputError(f"{where}: not a chip sweep (format {_FORMAT!r} with parameters, points)")
    return summary


def chip_sweep_figure(summary: dict[str, Any]) -> bytes:
    """The figure of a chip sweep as PNG bytes, from its ``sweep.json`` document (the same
    document gives the same bytes)."""
    return draw_png(_figure, _check(summary, "chip sweep summary"))


def write_chip_sweep_figure(sweep_dir: str | Path, summary: dict[str, Any] | None = None) -> Path:
    """Draw ``sweep_dir/chip.png`` from ``sweep_dir/sweep.json`` (or ``summary``, that
    document); returns its path. A missing or foreign ``sweep.json`` is an InputError."""
    sweep_dir = Path(sweep_dir)
    if summary is None:
        path = sweep_dir / SWEEP_SUMMARY_FILE
        summary = _check(read_json(path, "the sweep.json of hwsim sweep chip"), str(path))
    target = sweep_dir / FIGURE_FILE
    write_atomic(target, chip_sweep_figure(summary))
    return target
