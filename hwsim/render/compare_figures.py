"""The figures of a compare report, drawn from a :class:`~hwsim.render.compare_run.RunData`.

Learning curves, alignment, energy per rule, BP's energy gap by cause (a waterfall), weight
accesses per level and the timeline of one step; each is a :class:`Figure` with its PNG bytes,
drawn in the one figure style.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hwsim.core.outputs import WEIGHT_TENSORS
from hwsim.core.stats import finite, mean_std
from hwsim.core.units import format_si, format_sig, si_prefix
from hwsim.render.compare_run import RunData, SeedRun, saved_number
from hwsim.render.style import FIGURE_STYLE, png_bytes, rule_colors
from hwsim.sim.dataflow import DIRECTIONS
from hwsim.sim.explain import CAUSE_LABELS, CAUSES
from hwsim.sim.pricing import ENERGY_PARTS

PHASE_COLORS = {
    "forward": "#4C72B0",
    "backward": "#DD8452",
    "gradient": "#55A868",
    "update": "#C44E52",
    "init": "#8172B3",
}
UNIT_ORDER = ("forward", "error", "update")
LINK_ORDER = ("interconnect", "prng")
#: The energy figure stacks memory split by level, then these parts.
NON_MEMORY_PARTS = tuple(p for p in ENERGY_PARTS if p != "memory")


@dataclass(frozen=True)
class Figure:
    """One rendered figure: file name under ``figures/``, alt text, PNG bytes."""

    name: str
    alt: str
    png: bytes


def figure_stem(text: str) -> str:
    """``text`` as part of a figure file name (anything but letters, digits, ``_.-`` → ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _per_epoch(
    runs: Sequence[SeedRun], value: Callable[[dict[str, Any]], Any]
) -> dict[int, list[float]]:
    """Epoch → values over the seeds that had not diverged at that epoch."""
    out: dict[int, list[float]] = {}
    for run in runs:
        for row in run.rows:
            v = value(row)
            if not row.get("diverged") and finite(v):
                out.setdefault(int(row["epoch"]), []).append(float(v))
    return dict(sorted(out.items()))


def _mean_and_std(values: list[float]) -> tuple[float, float | None]:
    mean, std = mean_std(values)
    if mean is None:
        raise ValueError("no finite value to average")
    return mean, std


def learning_curves_figure(data: RunData) -> Figure:
    """Test accuracy vs epoch per rule: mean over seeds, ±1 std band, divergence marked ×."""
    colors = rule_colors(data.rules)
    fig, ax = plt.subplots(figsize=(7, 4))
    diverged_label = True
    for rule in data.rules:
        runs = data.seed_runs[rule]
        per_epoch = _per_epoch(runs, lambda r: r.get("test_accuracy"))
        if not per_epoch:
            continue
        epochs = list(per_epoch)
        # every epoch here has at least one finite value, so every mean exists
        stats = [_mean_and_std(v) for v in per_epoch.values()]
        means = [100 * m for m, _ in stats]
        ax.plot(epochs, means, marker="o", ms=3, color=colors[rule], label=rule)
        if len(runs) > 1:
            # No band where an epoch has one finite value (std undefined, not zero).
            ax.fill_between(
                epochs,
                [math.nan if s is None else 100 * (m - s) for m, s in stats],
                [math.nan if s is None else 100 * (m + s) for m, s in stats],
                color=colors[rule],
                alpha=0.2,
                linewidth=0,
            )
        for run in runs:
            if any(row.get("diverged") for row in run.rows):
                good = [r for r in run.rows if not r.get("diverged") and finite(r["test_accuracy"])]
                if good:
                    last = good[-1]
                    ax.plot(
                        last["epoch"],
                        100 * last["test_accuracy"],
                        marker="x",
                        ms=9,
                        mew=2,
                        color=colors[rule],
                        linestyle="none",
                        label="diverged (last finite epoch)" if diverged_label else None,
                    )
                    diverged_label = False
    ax.set_xlabel("epoch (0 = before training)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy (%)")
    seeds = len(data.summary.get("seeds", [])) or 1
    band = ", band ±1 std" if seeds > 1 else ""
    what = f"mean over {seeds} seeds" if seeds > 1 else "1 seed"
    ax.set_title(f"Test accuracy, {what}{band}")
    ax.legend(loc="best")
    fig.tight_layout()
    return Figure("learning_curves.png", "Test accuracy per epoch and rule", png_bytes(fig))


def alignment_figure(data: RunData) -> Figure:
    """Alignment angle between W and B over training: mean over layers (thick) and per layer."""
    colors = rule_colors(data.rules)
    fig, ax = plt.subplots(figsize=(7, 4))
    for rule in data.rules:
        runs = data.seed_runs[rule]
        layers: list[str] = []
        for run in runs:
            for row in run.rows:
                for layer in row.get("alignment_deg") or {}:
                    if layer not in layers:
                        layers.append(layer)
        for layer in layers:

            def layer_angle(row: dict[str, Any], layer: str = layer) -> Any:
                return (row.get("alignment_deg") or {}).get(layer)

            per_epoch = _per_epoch(runs, layer_angle)
            if per_epoch:
                means = [_mean_and_std(v)[0] for v in per_epoch.values()]
                ax.plot(list(per_epoch), means, color=colors[rule], lw=0.7, alpha=0.45)

        def layer_mean(row: dict[str, Any]) -> float | None:
            angles = [v for v in (row.get("alignment_deg") or {}).values() if finite(v)]
            return sum(angles) / len(angles) if angles else None

        per_epoch = _per_epoch(runs, layer_mean)
        if per_epoch:
            means = [_mean_and_std(v)[0] for v in per_epoch.values()]
            ax.plot(list(per_epoch), means, color=colors[rule], lw=2.2, label=f"{rule} (mean)")
    ax.set_xlabel("epoch (0 = before training)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("angle between W and B (degrees)")
    ax.set_title("Alignment angle: mean over layers (thick), each layer (thin)")
    # BP's angle is 0° throughout: leave room below 0 so its line is not hidden on the axis
    top = ax.get_ylim()[1]
    ax.set_ylim(bottom=-0.04 * max(top, 1.0), top=top)
    ax.axhline(0, color="black", lw=0.5, zorder=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    fig.tight_layout()
    return Figure("alignment.png", "Alignment angle per epoch and rule", png_bytes(fig))


def _levels_in_order(data: RunData, chip: str, present: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(present))
    order = [m for m in data.chip_memories[chip] if m in present]
    return order + sorted(m for m in present if m not in order)


#: One colour per memory kind, the same on every chip's figures.
KIND_COLORS = {
    "register_file": "#9ECAE1",
    "sram": "#3182BD",
    "global_buffer": "#08519C",
    "rom": "#8C6D31",
    "dram": "#C44E52",
    "cim": "#E377C2",
}
#: Colours of the parts of a step's energy that are not memory.
PART_COLORS = {
    "interconnect": "#DD8452",
    "compute": "#55A868",
    "feedback_generation": "#8172B3",
    "leakage": "#937860",
}
#: Hatches that tell apart two levels of the same kind on one chip (same colour).
_HATCHES = ("", "//", "..", "xx", "\\\\", "++")


def kind_color(kind: str) -> Any:
    """The colour of a memory kind (grey for a kind without one)."""
    return KIND_COLORS.get(kind, "#999999")


def _memory_styles(data: RunData, chip: str, levels: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """Level → (colour of its kind, hatch): levels of one kind share the colour, not the hatch."""
    kinds = data.chip_kinds.get(chip, {})
    seen: dict[str, int] = {}
    out = {}
    for level in levels:
        kind = kinds.get(level, "")
        n = seen.get(kind, 0)
        seen[kind] = n + 1
        out[level] = (kind_color(kind), _HATCHES[n % len(_HATCHES)])
    return out


def step_energy_peak_j(data: RunData) -> float:
    """The largest energy of one step over every chip and rule, in joules (a shared y-axis)."""
    return max(
        float(data.rule_summary(c, r)["energy_pj"]["total"]) * 1e-12
        for c in data.chips
        for r in data.rules
    )


def energy_figure(data: RunData, chip: str, peak_j: float | None = None) -> Figure:
    """Energy of one training step per rule, stacked: memory by level (coloured by its kind, the
    same on every chip), then the other parts. ``peak_j``: the y-axis top in joules, so that the
    figures of several chips share one axis (default: this chip's tallest bar)."""
    energies = {r: data.rule_summary(chip, r)["energy_pj"] for r in data.rules}
    levels = _levels_in_order(
        data, chip, (lv for e in energies.values() for lv in e.get("memory_by_level", {}))
    )
    kinds = data.chip_kinds.get(chip, {})
    styles = _memory_styles(data, chip, levels)
    # (label, section of the energy block, key, colour, hatch)
    parts = [
        (
            lv if kinds.get(lv, lv) == lv else f"{kinds.get(lv, 'memory')}: {lv}",
            "memory_by_level",
            lv,
            *styles[lv],
        )
        for lv in levels
    ]
    parts += [
        (p.replace("_", " "), "breakdown", p, PART_COLORS.get(p, "#cccccc"), "")
        for p in NON_MEMORY_PARTS
    ]
    top_j = peak_j if peak_j is not None else max(e["total"] * 1e-12 for e in energies.values())
    scale, prefix = si_prefix(top_j)
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(data.rules) + 3), 4))
    x = range(len(data.rules))
    bottom = [0.0] * len(data.rules)
    for label, section, key, color, hatch in parts:
        heights = [energies[r].get(section, {}).get(key, 0.0) * 1e-12 / scale for r in data.rules]
        if not any(heights):
            continue
        ax.bar(
            x,
            heights,
            bottom=bottom,
            color=color,
            hatch=hatch,
            edgecolor="white",
            lw=0.5,
            label=label,
            width=0.6,
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i in range(len(data.rules)):
        ax.text(i, bottom[i], format_sig(bottom[i], 3), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), data.rules)
    ax.set_ylabel(f"energy per training step ({prefix}J)")
    ax.set_title(f"Energy breakdown of one training step, chip {chip}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_ylim(0, max(top_j / scale, 1e-30) * 1.12)  # room for the totals above the bars
    fig.tight_layout()
    return Figure(
        f"energy_{figure_stem(chip)}.png", f"Energy breakdown per rule, chip {chip}", png_bytes(fig)
    )


def layer_energy_peak_j(data: RunData) -> float | None:
    """The largest energy of one layer in one step over every chip and rule, in joules (a
    shared y-axis for the per-layer figures); ``None`` without the per-layer split."""
    values = [
        float(e["total"]) * 1e-12
        for c in data.chips
        for r in data.rules
        for e in (data.rule_summary(c, r).get("energy_by_layer_pj") or {}).values()
    ]
    return max(values) if values else None


def layer_energy_figure(data: RunData, chip: str, peak_j: float | None = None) -> Figure | None:
    """Energy of one step per layer, one bar per rule in each layer, stacked by memory kind
    (the kind colours), then interconnect, compute and PRNG generation; ``peak_j`` (joules)
    shares the y-axis across chips. ``None`` for a run without the per-layer split."""
    per_rule = {r: data.rule_summary(chip, r).get("energy_by_layer_pj") for r in data.rules}
    if not all(isinstance(v, dict) and v for v in per_rule.values()):
        return None
    layers = data.layers(chip)
    kinds = data.chip_kinds.get(chip, {})
    kind_order = [k for k in KIND_COLORS if k in kinds.values()]
    kind_order += sorted(set(kinds.values()) - set(kind_order))
    stacks: list[tuple[str, Callable[[dict[str, Any]], float], Any]] = []
    for kind in kind_order:

        def by_kind(e: dict[str, Any], kind: str = kind) -> float:
            return sum(float(v) for lv, v in e["memory_by_level"].items() if kinds.get(lv) == kind)

        stacks.append((f"memory: {kind}", by_kind, kind_color(kind)))
    for part in ("interconnect", "compute", "feedback_generation"):

        def by_part(e: dict[str, Any], part: str = part) -> float:
            return float(e["breakdown"].get(part, 0.0))

        stacks.append((part.replace("_", " "), by_part, PART_COLORS[part]))
    own = max(float(e["total"]) * 1e-12 for v in per_rule.values() for e in (v or {}).values())
    peak = peak_j if peak_j is not None else own
    scale, prefix = si_prefix(peak)
    n = len(data.rules)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * n * len(layers) + 3), 4))
    labelled: set[str] = set()
    for g, layer in enumerate(layers):
        for i, rule in enumerate(data.rules):
            energy = (per_rule[rule] or {}).get(layer)
            if energy is None:
                continue
            pos = g + (i - (n - 1) / 2) * width
            bottom = 0.0
            for label, value, color in stacks:
                h = value(energy) * 1e-12 / scale
                if h:
                    ax.bar(
                        pos,
                        h,
                        width=width * 0.9,
                        bottom=bottom,
                        color=color,
                        label=None if label in labelled else label,
                    )
                    labelled.add(label)
                    bottom += h
            ax.text(pos, bottom, rule, ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(layers)), [f"layer {la}" for la in layers], fontsize=8)
    ax.set_ylabel(f"energy per training step ({prefix}J)")
    ax.set_ylim(0, peak / scale * 1.15)
    ax.set_title(f"Energy of one step per layer (bars: {', '.join(data.rules)}), chip {chip}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return Figure(
        f"layers_{figure_stem(chip)}.png",
        f"Energy per layer and rule, chip {chip}",
        png_bytes(fig),
    )


def cross_chip_figure(data: RunData) -> Figure | None:
    """Energy and latency of one step per chip, one bar per rule (rule colours), two panels; the
    ratio to BP on the same chip is written on each non-BP bar. ``None`` with one chip."""
    if len(data.chips) < 2:
        return None
    colors = rule_colors(data.rules)
    n = len(data.rules)
    width = 0.8 / n
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * n * len(data.chips) + 2), 4))

    def energy_j(b: dict[str, Any]) -> float:
        return float(b["energy_pj"]["total"]) * 1e-12

    def latency_s(b: dict[str, Any]) -> float:
        return float(b["latency_s"])

    panels: tuple[tuple[str, str, Callable[[dict[str, Any]], float], str], ...] = (
        (
            "energy per training step",
            "J",
            energy_j,
            "energy_per_step",
        ),
        ("latency per training step", "s", latency_s, "latency_per_step"),
    )
    for ax, (title, unit, value, ratio_key) in zip(axes, panels, strict=True):
        peak = max(value(data.rule_summary(c, r)) for c in data.chips for r in data.rules)
        scale, prefix = si_prefix(peak)
        for i, rule in enumerate(data.rules):
            xs = [g + (i - (n - 1) / 2) * width for g in range(len(data.chips))]
            blocks = [data.rule_summary(c, rule) for c in data.chips]
            heights = [value(b) / scale for b in blocks]
            ax.bar(xs, heights, width=width * 0.9, color=colors[rule], label=rule)
            for x, h, b in zip(xs, heights, blocks, strict=True):
                ratio = (b.get("ratios_to_bp") or {}).get(ratio_key)
                if rule != "bp" and finite(ratio):
                    ax.text(x, h, f"{ratio:.3f}×", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(data.chips)), data.chips, fontsize=8)
        ax.set_ylabel(f"{title} ({prefix}{unit})")
        ax.set_ylim(0, peak / scale * 1.15)
        ax.set_title(
            title[0].upper() + title[1:] + (" (× BP on bars)" if "bp" in data.rules else "")
        )
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("The same workloads on the report's chips", fontsize=10)
    fig.tight_layout()
    return Figure("chips.png", "Energy and latency per step on each chip and rule", png_bytes(fig))


def gap_waterfall_figure(data: RunData, chip: str) -> Figure | None:
    """Waterfall of BP − rule energy per step, one panel per non-BP rule: each cause steps up
    (BP pays more) or down (the rule pays more) from 0, the last bar is the difference.

    Causes below 1e-9 of BP's step energy (floating-point noise) and zero causes are left out.
    ``None`` when no rule has a ``gap_to_bp`` (BP not compared).
    """
    gaps = {
        r: g
        for r in data.rules
        if r != "bp" and isinstance(g := data.rule_summary(chip, r).get("gap_to_bp"), dict)
    }
    if not gaps:
        return None
    panels = []
    for rule, gap in gaps.items():
        energy = gap["energy_pj"]
        noise = 1e-9 * abs(saved_number(energy.get("bp")))
        given = energy.get("causes") if isinstance(energy.get("causes"), dict) else {}
        causes = {c: saved_number(given.get(c)) for c in CAUSES}  # old runs lack some
        steps = [
            (CAUSE_LABELS[c], causes[c])
            for c in CAUSES
            if abs(causes[c]) >= noise and causes[c] != 0
        ]
        panels.append((rule, steps, saved_number(energy.get("difference"))))
    running_max = [0.0]
    for _, steps, total in panels:
        level = 0.0
        for _, v in steps:
            level += v
            running_max.append(abs(level))
        running_max += [abs(v) for _, v in steps] + [abs(total)]
    scale, prefix = si_prefix(max(running_max) * 1e-12)
    width = max(6.0, 1.1 * max(len(s) + 1 for _, s, _ in panels) + 2)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, 2.8 * len(panels) + 0.4), squeeze=False
    )
    for ax, (rule, steps, total) in zip(axes[:, 0], panels, strict=True):
        level = 0.0
        labels = []
        for i, (label, value) in enumerate(steps):
            v = value * 1e-12 / scale
            ax.bar(i, v, bottom=level, color="#C44E52" if v > 0 else "#55A868", width=0.6)
            top = max(level, level + v)
            ax.text(i, top, format_sig(v, 3), ha="center", va="bottom", fontsize=7)
            level += v
            labels.append(label)
        t = total * 1e-12 / scale
        ax.bar(len(steps), t, color="#4C72B0", width=0.6)
        ax.text(len(steps), max(t, 0.0), format_sig(t, 3), ha="center", va="bottom", fontsize=7)
        labels.append(f"BP − {rule}")
        levels = [0.0, t]  # every bar's ends: 0, the total, the running sum after each cause
        running = 0.0
        for _, value in steps:
            running += value * 1e-12 / scale
            levels.append(running)
        low, high = min(levels), max(levels)
        pad = 0.18 * ((high - low) or 1.0)
        ax.set_ylim(low - (pad if low < 0 else 0.0), high + pad)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=15)
        ax.set_ylabel(f"{prefix}J per step")
        ax.set_title(
            f"BP − {rule}: red = BP pays more, green = {rule} pays more", fontsize=9, loc="left"
        )
    fig.suptitle(f"Where BP's extra energy goes, chip {chip}", fontsize=10)
    fig.tight_layout()
    return Figure(
        f"gap_{figure_stem(chip)}.png",
        f"Waterfall of BP's extra energy per step by cause, chip {chip}",
        png_bytes(fig),
    )


def weight_access_bits(rule_block: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    """(level, tensor, direction) → bits per step of the weight, mirror and feedback tensors."""
    out: dict[tuple[str, str, str], int] = {}
    for level, tensors in rule_block.get("counts", {}).items():
        for tensor in WEIGHT_TENSORS:
            for directions in tensors.get(tensor, {}).values():
                for direction, numbers in directions.items():
                    key = (level, tensor, direction)
                    out[key] = out.get(key, 0) + int(numbers.get("bits", 0))
    return out


def accesses_figure(data: RunData, chip: str) -> Figure:
    """Bits of weight/mirror/feedback reads, writes and transport per level, one bar per rule."""
    bits = {r: weight_access_bits(data.rule_summary(chip, r)) for r in data.rules}
    levels = _levels_in_order(data, chip, (k[0] for b in bits.values() for k, v in b.items() if v))
    categories = [
        (t, d)
        for t in WEIGHT_TENSORS
        for d in DIRECTIONS
        if any(b.get((lv, t, d), 0) for b in bits.values() for lv in levels)
    ]
    palette = plt.get_cmap("tab20")
    colors = {c: palette(i % 20) for i, c in enumerate(categories)}
    peak = max(
        (sum(b.get((lv, t, d), 0) for t, d in categories) for b in bits.values() for lv in levels),
        default=0,
    )
    scale, prefix = si_prefix(peak)
    n = len(data.rules)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * n * max(1, len(levels)) + 3), 4.2))
    ticks, tick_labels = [], []
    for g, level in enumerate(levels):
        for i, rule in enumerate(data.rules):
            pos = g + (i - (n - 1) / 2) * width
            ticks.append(pos)
            tick_labels.append(rule)
            bottom = 0.0
            for cat in categories:
                h = bits[rule].get((level, *cat), 0) / scale
                if h:
                    ax.bar(pos, h, width=width * 0.9, bottom=bottom, color=colors[cat])
                    bottom += h
        ax.text(
            g,
            -0.13,
            level,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontweight="bold",
        )
    ax.set_xticks(ticks, tick_labels, fontsize=8)
    ax.set_ylabel(f"bits per training step ({prefix}bit)")
    ax.set_title(f"Weight, mirror and feedback accesses per memory level, chip {chip}")
    handles = [Patch(color=colors[c], label=f"{c[0]} {c[1]}") for c in categories]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return Figure(
        f"accesses_{figure_stem(chip)}.png",
        f"Weight accesses per level and rule, chip {chip}",
        png_bytes(fig),
    )


def _resource_order(data: RunData, chip: str, resources: Iterable[str]) -> list[str]:
    present = set(resources)
    order = [r for r in (*UNIT_ORDER, *LINK_ORDER) if r in present]
    order += [m for m in data.chip_memories[chip] if m in present and m not in order]
    return order + sorted(present - set(order))


def timeline_figure(data: RunData, chip: str) -> Figure:
    """One simulated training step per rule: a row per unit/link/memory, bars coloured by phase.

    Interconnect bars are hatched (BP's weight transport in the backward phase, mirror
    synchronization in the update phase); each unit's row label carries its stall cycles.
    """
    sims = data.simulations[chip]
    end = max((e[5] for s in sims.values() for e in s["timeline"]), default=1) or 1
    rows_per_rule = {
        rule: _resource_order(data, chip, (e[0] for e in sims[rule]["timeline"]))
        for rule in data.rules
    }
    heights = [max(1, len(rows)) * 0.32 + 0.7 for rows in rows_per_rule.values()]
    fig, axes = plt.subplots(
        len(data.rules),
        1,
        figsize=(9, sum(heights) + 0.6),
        sharex=True,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    clock = float(data.summary["chips"][chip].get("clock_hz") or 0)
    for ax, rule in zip(axes[:, 0], data.rules, strict=True):
        sim = sims[rule]
        rows = rows_per_rule[rule]
        stalls = sim.get("stall_cycles", {})
        spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for resource, phase, _tensor, _layer, start, stop in sim["timeline"]:
            spans.setdefault((resource, phase), []).append((start, max(stop - start, 0)))
        for (resource, phase), bars in sorted(spans.items()):
            y = rows.index(resource)
            link = resource in LINK_ORDER
            ax.broken_barh(
                bars,
                (y - 0.38, 0.76),
                facecolors=PHASE_COLORS.get(phase, "#999999"),
                edgecolors="black" if link else "none",
                linewidth=0.6 if link else 0,
                hatch="////" if resource == "interconnect" else None,
            )
        labels = [
            f"{r} (stall {stalls[r]:,} cyc)" if stalls.get(r) else r for r in rows
        ]  # stall = cycles the unit waited for a busy memory or link
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        latency = sim.get("latency_cycles", 0)
        seconds = f" = {format_si(latency / clock, 's')}" if clock else ""
        ax.set_title(
            f"{rule}: one step of {sim.get('batch_size', '?')} samples, "
            f"{latency:,} cycles{seconds}",
            fontsize=9,
            loc="left",
        )
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, end * 1.01)
    axes[-1, 0].set_xlabel("cycle")
    handles = [Patch(color=c, label=p) for p, c in PHASE_COLORS.items() if p != "init"]
    handles.append(
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch="////",
            label="interconnect (colour: the phase moving data)",
        )
    )
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        fontsize=8,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # leave room for the legend on top
    return Figure(
        f"timeline_{figure_stem(chip)}.png",
        f"Timeline of one simulated training step per rule, chip {chip}",
        png_bytes(fig),
    )


def render_figures(data: RunData) -> list[Figure]:
    """Every figure of the report, rendered in memory (nothing is written)."""
    with matplotlib.rc_context(FIGURE_STYLE):
        figures = [learning_curves_figure(data), alignment_figure(data)]
        chips = cross_chip_figure(data)
        if chips is not None:
            figures.append(chips)
        # one y-axis for every chip's energy breakdown, so the bars compare across chips
        peak = step_energy_peak_j(data)
        layer_peak = layer_energy_peak_j(data)
        for chip in data.chips:
            figures.append(energy_figure(data, chip, peak))
            layers = layer_energy_figure(data, chip, layer_peak)
            if layers is not None:
                figures.append(layers)
            gap = gap_waterfall_figure(data, chip)
            if gap is not None:
                figures.append(gap)
            figures.append(accesses_figure(data, chip))
            figures.append(timeline_figure(data, chip))
        from hwsim.render.wear import wear_figure  # it draws with this module's Figure

        wear = wear_figure(data)
        if wear is not None:
            figures.append(wear)
    return figures
