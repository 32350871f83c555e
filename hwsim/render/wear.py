"""Wear and lifetime of non-volatile cells in a compare report: tables, sentences, one figure.

Everything is computed from ``summary.json`` (docs/compare.md): each chip's rule blocks carry
the simulation's ``wear`` (:mod:`hwsim.sim.wear`; null on a chip without non-volatile levels),
and the top-level ``update_sparsity`` holds, per rule, what the training runs measured: the
fraction of stored integer weight levels one optimizer step changes, per layer and epoch, over
the seeds. The simulation prices each rule's first seed's workload, so its wear follows that
seed's measurement (or, without one, assumes that every update programs every cell).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from hwsim.core.stats import finite
from hwsim.core.units import MISSING
from hwsim.render.compare_figures import Figure
from hwsim.render.compare_run import RunData
from hwsim.render.markup import Table
from hwsim.render.style import png_bytes, rule_colors
from hwsim.sim.wear import count_text

__all__ = [
    "WEAR_FIGURE",
    "count_text",
    "has_wear",
    "lifetime_sentence",
    "sparsity_lines",
    "sparsity_table",
    "wear_basis",
    "wear_figure",
    "wear_table",
    "wears_out",
]

#: The file name of the wear figure (one for every chip).
WEAR_FIGURE = "wear.png"
#: Tensors whose cells an update programs where the weight's stored level changed.
_FOLLOW_W = ("weights", "weight_mirror")


def has_wear(summary: Mapping[str, Any], chip: str) -> bool:
    """Whether ``chip`` has non-volatile levels: some rule's ``wear`` is not null."""
    rules = summary["chips"][chip]["rules"]
    return any(isinstance(b.get("wear"), dict) for b in rules.values())


def wears_out(summary: Mapping[str, Any], chip: str) -> bool:
    """Whether some rule's step programs a non-volatile cell of ``chip`` (it has a
    ``first_failure``)."""
    rules = summary["chips"][chip]["rules"]
    return any(isinstance((b.get("wear") or {}).get("first_failure"), dict) for b in rules.values())


def wear_basis(tensor: Mapping[str, Any], kind: str) -> str:
    """Where a tensor's most-written rate comes from, in words (``kind``: its level's kind)."""
    if not tensor.get("writes_per_step"):
        return "not written by a step"
    if tensor.get("measured"):
        return "measured update sparsity"
    if kind == "cim" and tensor.get("tensor") in _FOLLOW_W:
        return "upper bound: every update programs every cell"
    if kind == "cim":
        return "every write programs the cell"
    return "every write rewrites the tensor's words"


def _sparsity(summary: Mapping[str, Any], rule: str) -> dict[str, Any] | None:
    block = (summary.get("update_sparsity") or {}).get(rule)
    return block if isinstance(block, dict) else None


def wear_table(data: RunData, chip: str) -> Table | None:
    """One row per rule × non-volatile stored tensor on ``chip``: program operations per cell
    per step (mean and the most-written cell), endurance, steps and training runs until that
    cell wears out, and where the rate comes from. ``None`` when the chip has no wear."""
    if not has_wear(data.summary, chip):
        return None
    kinds = data.chip_kinds.get(chip, {})
    headers = [
        "rule",
        "tensor",
        "level (technology)",
        "cells",
        "writes / cell / step, mean",
        "writes / cell / step, most-written cell (layer)",
        "endurance (cycles)",
        "steps to first failure",
        "training runs to first failure",
        "basis",
    ]
    rows = []
    for rule in data.rules:
        wear = data.rule_summary(chip, rule).get("wear")
        if not isinstance(wear, dict):
            continue
        first = wear.get("first_failure") or {}
        for t in wear.get("tensors") or []:
            is_first = first.get("level") == t["level"] and first.get("tensor") == t["tensor"]
            rows.append(
                [
                    rule,
                    t["tensor"] + (" (first to fail)" if is_first else ""),
                    f"{t['level']} ({t['technology']})",
                    f"{int(t['cells']):,}",
                    f"{t['mean_writes_per_cell_per_step']:.4g}",
                    f"{t['max_writes_per_cell_per_step']:.4g} ({t['max_layer']})",
                    count_text(t.get("endurance_cycles")),
                    count_text(t.get("steps_to_endurance")),
                    count_text(t.get("runs_to_endurance")),
                    wear_basis(t, kinds.get(t["level"], "")),
                ]
            )
        if not wear.get("tensors"):
            rows.append([rule, "none stored in a non-volatile level", *[MISSING] * 8])
    return Table(headers, rows)


def _pct(value: Any, digits: int = 3) -> str:
    return f"{100 * float(value):.{digits}g} %" if finite(value) else MISSING


def _pct_mean_std(stats: Mapping[str, Any]) -> str:
    """``mean ± std`` in percent, both to the mean's three significant digits (a spread below
    them reads ``± 0``); the mean alone where one seed measured no spread."""
    mean: Any = stats.get("mean")
    std: Any = stats.get("std")
    if not finite(mean):
        return MISSING
    value = abs(100 * float(mean))
    decimals = max(0, 2 - math.floor(math.log10(value))) if value else 2
    text = f"{100 * float(mean):.{decimals}f} %"
    return text + (f" ± {100 * float(std):.{decimals}f} %" if finite(std) else "")


def sparsity_table(data: RunData) -> Table | None:
    """The measured update sparsity: one row per rule and layer (and every layer together),
    the run's changed fraction (mean ± sample std over seeds), its per-epoch means and the
    most-changed weight. ``None`` when no rule measured it."""
    rows = []
    for rule in data.rules:
        block = _sparsity(data.summary, rule)
        if block is None or not block.get("layers"):
            continue
        entries = list(block["layers"].items())
        if block.get("all_layers"):
            entries.append(("all layers", block["all_layers"]))
        for layer, entry in entries:
            per_epoch = entry["changed_fraction_per_epoch"]["mean"]
            most = entry.get("max_changes_per_weight") or {}
            rate = (entry.get("max_change_rate") or {}).get("max")
            rows.append(
                [
                    rule,
                    layer,
                    ", ".join(str(s) for s in entry.get("seeds", block["seeds"])),
                    f"{entry['weights']:,}" if isinstance(entry.get("weights"), int) else MISSING,
                    _pct_mean_std(entry["changed_fraction"]),
                    ", ".join(_pct_mean_std({"mean": v}) for v in per_epoch),
                    f"{most['max']:,} ({rate:.3g} per step)"
                    if isinstance(most.get("max"), int) and finite(rate)
                    else MISSING,
                ]
            )
    if not rows:
        return None
    headers = [
        "rule",
        "layer",
        "seeds",
        "weights",
        "changed per step, whole run (mean ± std over seeds)",
        "changed per step, per epoch (mean over seeds)",
        "most-changed weight: changes in the run (per step)",
    ]
    return Table(headers, rows)


def _wear_measured(data: RunData, rule: str) -> bool | None:
    """Whether the simulated wear of ``rule`` followed a measured update sparsity on some chip
    (None: no chip has wear)."""
    wears = [data.rule_summary(c, rule).get("wear") for c in data.chips]
    found = [w for w in wears if isinstance(w, dict)]
    return any(w.get("measured") for w in found) if found else None


def sparsity_lines(data: RunData) -> list[str]:
    """What was measured and what the simulation used, rule by rule."""
    out = []
    for rule in data.rules:
        block = _sparsity(data.summary, rule)
        if block is None:
            out.append(
                f"{rule}: this summary has no update-sparsity record (written before hwsim "
                "recorded it); the wear assumes that every update programs every cell."
            )
            continue
        seed, run = block.get("simulated_seed"), block.get("simulated_run")
        if not block.get("measured"):
            out.append(
                f"{rule}: not measured (no seed's `workload.json` has `update_sparsity`); the "
                f"wear, priced on seed {seed}'s workload (`{run}`), assumes that every update "
                "programs every cell: an upper bound on the weights' writes."
            )
            continue
        seeds = ", ".join(str(s) for s in block["seeds"])
        text = f"{rule}: measured on seed{'s' if len(block['seeds']) > 1 else ''} {seeds}"
        if block.get("batch_size"):
            text += f" at batch {block['batch_size']}"
        if block.get("seeds_without"):
            missing = ", ".join(str(s) for s in block["seeds_without"])
            text += f" (not on {missing})"
        text += f"; the chips priced seed {seed}'s workload (`{run}`)"
        used = _wear_measured(data, rule)
        if not block.get("simulated_measured"):
            text += ", which has no measurement: its wear is an upper bound."
        elif used is False:
            text += (
                ", but the simulation did not apply its measurement (the simulator that "
                "priced it did not read `update_sparsity`): the wear is an upper bound."
            )
        else:
            text += ", whose measurement sets which cells an update programs."
        out.append(text)
    return out


def first_failures(
    summary: Mapping[str, Any], chip: str, kinds: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any] | None]:
    """Rule → its ``wear.first_failure`` on ``chip`` with the tensor's technology, its
    most-written cell's program operations per step (``writes``) and :func:`wear_basis`
    (``kinds``: memory name → kind; without it, the tensor's own ``level_is_cim``); None where
    no step programs a cell; rules without wear left out."""
    out: dict[str, dict[str, Any] | None] = {}
    for rule in summary["rule_order"]:
        wear = summary["chips"][chip]["rules"][rule].get("wear")
        if not isinstance(wear, dict):
            continue
        first = wear.get("first_failure")
        if not isinstance(first, dict):
            out[rule] = None
            continue
        tensor: dict[str, Any] = next(
            (
                t
                for t in wear.get("tensors") or []
                if t["level"] == first["level"] and t["tensor"] == first["tensor"]
            ),
            {},
        )
        if kinds is not None:
            kind = kinds.get(first["level"], "")
        else:
            kind = "cim" if tensor.get("level_is_cim") else ""
        out[rule] = {
            **first,
            "technology": tensor.get("technology"),
            "writes": tensor.get("max_writes_per_cell_per_step"),
            "basis": wear_basis(tensor, kind),
        }
    return out


def _bound(first: Mapping[str, Any]) -> bool:
    return str(first.get("basis", "")).startswith("upper bound")


def lifetime_sentence(
    summary: Mapping[str, Any], kinds: Mapping[str, Mapping[str, str]] | None = None
) -> str | None:
    """One sentence: on the first chip with non-volatile levels, after how many training runs
    of its workload each rule's most-written cell reaches its endurance (steps where a run has
    no length), and what the rate rests on (``kinds``: chip → memory name → kind). ``None``
    when no chip has wear."""
    worn = [c for c in summary["chip_order"] if has_wear(summary, c)]
    if not worn:
        return None
    # the first chip where a cell wears out (a chip whose cells no step programs says little)
    chip = next((c for c in worn if wears_out(summary, c)), worn[0])
    firsts = first_failures(summary, chip, (kinds or {}).get(chip, {}))
    never = [r for r, f in firsts.items() if f is None]
    parts = []
    for rule, first in firsts.items():
        if first is None:
            continue
        runs, steps = first.get("runs"), first.get("steps")
        when = (
            f"{count_text(runs)} training runs ({count_text(steps)} steps)"
            if finite(runs)
            else f"{count_text(steps)} steps"
        )
        where = f"{first['tensor']} of {first['layer']} in {first['level']}"
        if first.get("technology"):
            where += f", {first['technology']}"
        parts.append((rule, when, where, str(first["basis"])))
    if not parts:
        return f"On {_join(worn)}, no training step programs a non-volatile cell: none wears out."
    grouped: dict[tuple[str, str], list[str]] = {}
    for rule, when, where, _ in parts:
        grouped.setdefault((when, where), []).append(rule)
    phrases = []
    for i, ((when, where), rules) in enumerate(grouped.items()):
        owners = _join([f"{r}'s" for r in rules])
        if i == 0:
            cells, verb = ("cell", "reaches its") if len(rules) == 1 else ("cells", "reach their")
            phrases.append(f"{owners} most-written {cells} ({where}) {verb} endurance after {when}")
        else:
            shown = f" ({where})" if where != parts[0][2] else ""
            phrases.append(f"{owners}{shown} after {when}")
    bases: dict[str, list[str]] = {}
    for rule, *_, basis in parts:
        bases.setdefault(basis, []).append(rule)
    notes = [f"{_join(rules)}: {_BASIS_NOTES.get(b, b)}" for b, rules in bases.items()]
    if never:
        notes.append(f"{_join(never)}: no cell programmed by a step")
    return f"On {chip}, " + ", ".join(phrases) + "; " + "; ".join(notes) + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


#: How the conclusion names what a lifetime rests on.
_BASIS_NOTES = {
    "measured update sparsity": "from the measured update sparsity",
    "upper bound: every update programs every cell": (
        "an upper bound (no measured update sparsity: every update programs every cell)"
    ),
    "every write rewrites the tensor's words": "exact (every write rewrites the tensor's words)",
}


def wear_figure(data: RunData) -> Figure | None:
    """Left (when some rule measured it): the fraction of all stored weight levels one optimizer
    step changes, per epoch and rule (mean over the seeds that measured it, ±1 sample-std
    band, log y). Right: training
    runs (steps where a run has no length) until each rule's most-written cell reaches its
    endurance, one group of bars per chip with non-volatile levels, hatched where the writes
    are an upper bound. ``None`` when no chip has wear."""
    chips = [c for c in data.chips if has_wear(data.summary, c)]
    if not chips:
        return None
    colors = rule_colors(data.rules)
    measured = [r for r in data.rules if ((_sparsity(data.summary, r) or {}).get("all_layers"))]
    # the lifetime panel grows with its bars; without a measurement it stands alone
    # bars for the chips where a cell wears out (a chip whose cells no step programs has none)
    chips = [c for c in chips if wears_out(data.summary, c)] or chips
    bars_width = max(4.5, 0.45 * len(data.rules) * len(chips) + 2.5)
    if measured:
        fig, (left, right) = plt.subplots(
            1,
            2,
            figsize=(5.5 + bars_width, 4),
            gridspec_kw={"width_ratios": [5.5, bars_width]},
        )
    else:
        fig, right = plt.subplots(figsize=(bars_width + 1.5, 4))
    unmeasured = []
    for rule in data.rules if measured else ():
        block = _sparsity(data.summary, rule)
        every = (block or {}).get("all_layers")
        if not every:
            unmeasured.append(rule)
            continue
        means = every["changed_fraction_per_epoch"]["mean"]
        stds = every["changed_fraction_per_epoch"]["std"]
        epochs = list(range(1, len(means) + 1))
        ys = [100 * m if finite(m) and m > 0 else math.nan for m in means]
        left.plot(epochs, ys, marker="o", ms=3, color=colors[rule], label=rule)
        if len(block["seeds"]) > 1:  # type: ignore[index]
            low = [
                100 * max(m - s, m * 1e-3) if finite(m) and finite(s) else math.nan
                for m, s in zip(means, stds, strict=True)
            ]
            high = [
                100 * (m + s) if finite(m) and finite(s) else math.nan
                for m, s in zip(means, stds, strict=True)
            ]
            left.fill_between(epochs, low, high, color=colors[rule], alpha=0.2, linewidth=0)
    if measured:
        left.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        left.yaxis.set_major_formatter(plain)
        left.yaxis.set_minor_formatter(plain)
        left.tick_params(axis="y", which="minor", labelsize=7)
        left.set_xlabel("epoch")
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_ylabel("weight levels changed per step (%, all layers)")
        left.set_title(
            "Measured update sparsity (mean over seeds, band ±1 std)", fontsize=9, loc="left"
        )
        left.legend(loc="best", fontsize=8)
        if unmeasured:
            left.text(
                0.01,
                0.01,
                f"not measured: {', '.join(unmeasured)}",
                transform=left.transAxes,
                fontsize=8,
                va="bottom",
            )
    n = len(data.rules)
    width = 0.8 / n
    firsts = {c: first_failures(data.summary, c, data.chip_kinds.get(c, {})) for c in chips}
    runs_known = all(f is None or finite(f.get("runs")) for c in chips for f in firsts[c].values())
    key = "runs" if runs_known else "steps"
    values = []
    for g, chip in enumerate(chips):
        for i, rule in enumerate(data.rules):
            first = firsts[chip].get(rule)
            if first is None or not finite(first.get(key)) or first[key] <= 0:
                continue
            pos = g + (i - (n - 1) / 2) * width
            value = float(first[key])
            values.append(value)
            right.bar(
                pos,
                value,
                width=width * 0.9,
                color=colors[rule],
                hatch="//" if _bound(first) else "",
                edgecolor="white",
                label=rule if g == 0 else None,
            )
            right.text(
                pos,
                value,
                f" {count_text(value)}",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    right.set_xticks(range(len(chips)), chips, fontsize=8)
    right.set_xlim(-0.5, len(chips) - 0.5)
    if not values:
        right.text(
            0.5,
            0.5,
            "No training step programs a non-volatile cell:\nnothing wears out.",
            ha="center",
            va="center",
            transform=right.transAxes,
        )
    if values:
        right.set_yscale("log")
        right.set_ylim(min(values) / 3, max(values) * 20)  # room for the labels above
        right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: count_text(v)))
        right.yaxis.set_minor_formatter(NullFormatter())
    right.set_ylabel(f"training {key} until the first cell wears out")
    title = "Lifetime: until the most-written cell wears out"
    if not measured:
        title += " (no run measured its update sparsity)"
    right.set_title(title, fontsize=9, loc="left")
    handles = [Patch(color=colors[r], label=r) for r in data.rules]
    handles.append(
        Patch(facecolor="white", edgecolor="grey", hatch="//", label="upper bound (unmeasured)")
    )
    right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return Figure(
        WEAR_FIGURE,
        "Measured update sparsity per epoch and lifetime per rule and chip",
        png_bytes(fig),
    )
