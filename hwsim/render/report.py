"""The human report of a compare run: ``report.md``, a self-contained ``report.html``, figures.

:func:`write_report` reads only the files of a compare run directory (docs/compare.md) and
writes the report next to them, so ``hwsim report RUN_DIR`` regenerates it without retraining.
Everything is rendered in memory first and then written file by file atomically (``name.tmp`` →
``os.replace``): a failure while rendering leaves a previous report untouched.

The report is built once as a list of blocks (headings, paragraphs, tables, figures, code) and
rendered twice, as Markdown and as HTML, so the two always say the same thing.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import yaml
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, read_jsonl, read_text, write_atomic
from hwsim.core.outputs import SUMMARY_FORMAT, SUMMARY_VERSION, WEIGHT_TENSORS
from hwsim.core.rules import rule_dirname
from hwsim.core.stats import finite, mean_std
from hwsim.core.units import MISSING, column_scale, format_si, format_sig, si_prefix
from hwsim.render.style import FIGURE_STYLE, png_bytes, rule_colors
from hwsim.sim.dataflow import DIRECTIONS
from hwsim.sim.pricing import ENERGY_PARTS

__all__ = ["write_report"]

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


# --------------------------------------------------------------------------- reading the run


@dataclass(frozen=True)
class SeedRun:
    """The metrics rows of one training run (one rule, one seed)."""

    run_dir: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class RunData:
    """Everything the report shows, read from one compare run directory."""

    run_dir: Path
    summary: dict[str, Any]
    rules: list[str]
    chips: list[str]
    seed_runs: dict[str, list[SeedRun]]
    simulations: dict[str, dict[str, dict[str, Any]]]  # chip → rule → RuleResult dict
    chip_texts: dict[str, str]
    chip_memories: dict[str, list[str]]  # memory names innermost first
    experiment_text: str
    config: dict[str, Any] = field(default_factory=dict)  # first run's config.yaml

    def rule_summary(self, chip: str, rule: str) -> dict[str, Any]:
        """The ``RULE`` block of summary.json for ``rule`` on ``chip``."""
        block: dict[str, Any] = self.summary["chips"][chip]["rules"][rule]
        return block


def _inside(run_dir: Path, relative: str, what: str) -> Path:
    path = (run_dir / relative).resolve()
    if run_dir.resolve() not in path.parents:
        raise InputError(f"{run_dir / 'summary.json'}: {what} {relative!r} is outside the run")
    return path


def _require(mapping: Any, key: str, where: str, expected: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise InputError(f"{where}: missing key {key!r}; expected {expected}")
    return mapping[key]


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    expected = "one JSON object per epoch (docs/learning.md)"
    rows = read_jsonl(path, expected)
    for number, row in enumerate(rows, start=1):
        for key in ("epoch", "test_accuracy"):
            _require(row, key, f"{path} row {number}", expected)
    if not rows:
        raise InputError(f"{path}: empty; expected {expected}")
    return rows


def load_run(run_dir: str | Path) -> RunData:
    """Read and check every file of a compare run directory that the report needs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory; expected a `hwsim compare` run directory")
    summary_path = run_dir / "summary.json"
    expected = "the summary of `hwsim compare` (docs/compare.md)"
    summary = read_json(summary_path, expected)
    where = str(summary_path)
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise InputError(f"{where}: expected 'format': {SUMMARY_FORMAT!r}; not a compare summary")
    if summary.get("version") != SUMMARY_VERSION:
        raise InputError(
            f"{where}: unsupported version {summary.get('version')!r}; expected {SUMMARY_VERSION}"
        )
    rules = list(_require(summary, "rule_order", where, "a list of rule specs"))
    chips = list(_require(summary, "chip_order", where, "a list of chip names"))
    chip_blocks = _require(summary, "chips", where, "one block per chip")
    for key in ("data", "seeds", "experiment"):
        _require(summary, key, where, "see docs/compare.md")
    if not rules or not chips:
        raise InputError(f"{where}: 'rule_order' and 'chip_order' must not be empty")
    for chip in chips:
        block = _require(chip_blocks, chip, f"{where}: chips", "a block per chip of chip_order")
        rule_blocks = _require(block, "rules", f"{where}: chips.{chip}", "a block per rule")
        for rule in rules:
            _require(rule_blocks, rule, f"{where}: chips.{chip}.rules", "a block per rule")

    first_chip = chips[0]
    seed_runs: dict[str, list[SeedRun]] = {}
    for rule in rules:
        dirs = _require(
            chip_blocks[first_chip]["rules"][rule], "run_dirs", where, "runs/<rule>-seed<k>"
        )
        seed_runs[rule] = [
            SeedRun(d, _read_metrics(_inside(run_dir, d, "run dir") / "metrics.jsonl"))
            for d in dirs
        ]
    config: dict[str, Any] = {}
    first_run = seed_runs[rules[0]][0].run_dir if seed_runs[rules[0]] else None
    if first_run is not None and (run_dir / first_run / "config.yaml").is_file():
        loaded = yaml.safe_load((run_dir / first_run / "config.yaml").read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}

    simulations: dict[str, dict[str, dict[str, Any]]] = {}
    chip_texts: dict[str, str] = {}
    chip_memories: dict[str, list[str]] = {}
    for chip in chips:
        simulations[chip] = {}
        for rule in rules:
            path = run_dir / "simulation" / chip / f"{rule_dirname(rule)}.json"
            sim = read_json(path, "hwsim.sim.api RuleResult.to_dict() with a timeline")
            if isinstance(sim, dict) and "rules" in sim:  # a whole `hwsim simulate --json`
                sim = _require(sim["rules"], rule, str(path), f"rule {rule}")
            _require(sim, "timeline", str(path), "a simulation with timeline=True")
            simulations[chip][rule] = sim
        copy = chip_blocks[chip].get("copy", f"chips/{chip}.yaml")
        chip_path = _inside(run_dir, copy, "chip copy")
        chip_texts[chip] = read_text(chip_path, "the chip YAML used")
        try:
            chip_yaml = yaml.safe_load(chip_texts[chip])
        except yaml.YAMLError as exc:
            raise InputError(f"{chip_path}: invalid YAML ({exc})") from None
        memories = chip_yaml.get("memories") if isinstance(chip_yaml, dict) else None
        chip_memories[chip] = list(memories) if isinstance(memories, dict) else []
    experiment_text = read_text(run_dir / "experiment.yaml", "the resolved experiment YAML")
    return RunData(
        run_dir=run_dir,
        summary=summary,
        rules=rules,
        chips=chips,
        seed_runs=seed_runs,
        simulations=simulations,
        chip_texts=chip_texts,
        chip_memories=chip_memories,
        experiment_text=experiment_text,
        config=config,
    )


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    """One rendered figure: file name under ``figures/``, alt text, PNG bytes."""

    name: str
    alt: str
    png: bytes


def _safe_name(text: str) -> str:
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
    ax.set_title(f"Test accuracy, mean over {seeds} seed(s){band}")
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
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    fig.tight_layout()
    return Figure("alignment.png", "Alignment angle per epoch and rule", png_bytes(fig))


def _levels_in_order(data: RunData, chip: str, present: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(present))
    order = [m for m in data.chip_memories[chip] if m in present]
    return order + sorted(m for m in present if m not in order)


def energy_figure(data: RunData, chip: str) -> Figure:
    """Energy of one training step per rule, stacked: memory by level, then the other parts."""
    energies = {r: data.rule_summary(chip, r)["energy_pj"] for r in data.rules}
    levels = _levels_in_order(
        data, chip, (lv for e in energies.values() for lv in e.get("memory_by_level", {}))
    )
    # (label, section of the energy block, key): memory by level, then the other parts
    parts = [(f"memory: {lv}", "memory_by_level", lv) for lv in levels]
    parts += [(p.replace("_", " "), "breakdown", p) for p in NON_MEMORY_PARTS]
    scale, prefix = column_scale(e["total"] * 1e-12 for e in energies.values())
    blues = plt.get_cmap("Blues")
    others = ["#DD8452", "#55A868", "#8172B3", "#937860"]
    colors: list[Any] = [
        blues(0.35 + 0.6 * i / max(1, len(levels) - 1)) for i in range(len(levels))
    ]
    colors += others
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(data.rules) + 3), 4))
    x = range(len(data.rules))
    bottom = [0.0] * len(data.rules)
    for (label, section, key), color in zip(parts, colors, strict=True):
        heights = [energies[r].get(section, {}).get(key, 0.0) * 1e-12 / scale for r in data.rules]
        if not any(heights):
            continue
        ax.bar(x, heights, bottom=bottom, color=color, label=label, width=0.6)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i in range(len(data.rules)):
        ax.text(i, bottom[i], format_sig(bottom[i], 3), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), data.rules)
    ax.set_ylabel(f"energy per training step ({prefix}J)")
    ax.set_title(f"Energy breakdown of one training step, chip {chip}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_ylim(0, max(max(bottom), 1e-30) * 1.12)  # room for the totals above the bars
    fig.tight_layout()
    return Figure(
        f"energy_{_safe_name(chip)}.png", f"Energy breakdown per rule, chip {chip}", png_bytes(fig)
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
        f"accesses_{_safe_name(chip)}.png",
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
            label="interconnect (transport / sync)",
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
        f"timeline_{_safe_name(chip)}.png",
        f"Timeline of one simulated training step per rule, chip {chip}",
        png_bytes(fig),
    )


def render_figures(data: RunData) -> list[Figure]:
    """Every figure of the report, rendered in memory (nothing is written)."""
    with matplotlib.rc_context(FIGURE_STYLE):
        figures = [learning_curves_figure(data), alignment_figure(data)]
        for chip in data.chips:
            figures += [energy_figure(data, chip), accesses_figure(data, chip)]
            figures.append(timeline_figure(data, chip))
    return figures


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True)
class Table:
    """A table: column headers (units included) and rows of already formatted cells."""

    headers: list[str]
    rows: list[list[str]]


Block = tuple[str, Any]  # ("h2"|"h3"|"p"|"table"|"figure"|"code", payload)


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}" if finite(value) else MISSING


def _pct_mean_std(mean: Any, std: Any) -> str:
    """``mean ± std`` in percent; the mean alone where one seed gives no spread."""
    return _pct(mean) + (f" ± {_pct(std)}" if finite(std) else "")


def summary_table(data: RunData) -> Table:
    """The summary table: one row per chip and rule, with the unit in every header."""
    blocks = [(c, r, data.rule_summary(c, r)) for c in data.chips for r in data.rules]

    def run_j(b: dict[str, Any]) -> float:
        return (
            float((b.get("run_totals") or {}).get("energy_pj", {}).get("total", math.nan)) * 1e-12
        )

    e_scale, e_prefix = column_scale(b["energy_pj"]["total"] * 1e-12 for *_, b in blocks)
    r_scale, r_prefix = column_scale(v for *_, b in blocks if finite(v := run_j(b)))
    t_scale, t_prefix = column_scale(b["latency_s"] for *_, b in blocks)
    has_bp = any("ratios_to_bp" in b for *_, b in blocks)
    headers = [
        "chip",
        "rule",
        "status",
        "final test accuracy (%, mean ± std)",
        "best test accuracy (%)",
        "weight transport / step (bits)",
        "sync writes / step (bits)",
        "feedback reads / step (bits)",
        f"energy / step ({e_prefix}J)",
        f"energy / run ({r_prefix}J)",
        f"latency / step ({t_prefix}s)",
    ]
    if has_bp:
        headers += [
            "energy / step ÷ BP (×)",
            "energy / run ÷ BP (×)",
            "latency ÷ BP (×)",
            "accuracy ÷ BP (×)",
        ]
    rows = []
    for chip, rule, b in blocks:
        acc = b.get("test_accuracy", {})
        run = run_j(b)
        row = [
            chip,
            rule,
            str(b.get("status", MISSING)),
            _pct_mean_std(acc.get("final"), acc.get("final_std")),
            _pct(acc.get("best")),
            f"{int(b['weight_transport_bits']):,}",
            f"{int(b['sync_write_bits']):,}",
            f"{int(b['feedback_read_bits']):,}",
            format_sig(b["energy_pj"]["total"] * 1e-12 / e_scale),
            format_sig(run / r_scale) if finite(run) else MISSING,
            format_sig(b["latency_s"] / t_scale),
        ]
        if has_bp:
            ratios = b.get("ratios_to_bp") or {}
            row += [
                f"{ratios[k]:.3f}" if finite(ratios.get(k)) else MISSING
                for k in (
                    "energy_per_step",
                    "energy_run",
                    "latency_per_step",
                    "final_test_accuracy",
                )
            ]
        rows.append(row)
    return Table(headers, rows)


def _mean_alignment(block: dict[str, Any]) -> float | None:
    angles = [v for v in (block.get("final_alignment_deg") or {}).values() if finite(v)]
    return sum(angles) / len(angles) if angles else None


def findings(data: RunData) -> list[str]:
    """Sentences computed from the numbers of the run (no claim is written in advance)."""
    first = data.chips[0]
    blocks = {r: data.rule_summary(first, r) for r in data.rules}
    out = []
    finals = {r: b.get("test_accuracy", {}).get("final") for r, b in blocks.items()}
    seeds = len(data.summary.get("seeds", [])) or 1
    parts = []
    for rule in data.rules:
        text = f"{rule} {_pct(finals[rule])} %"
        if rule != "bp" and finite(finals.get("bp")) and finite(finals[rule]):
            delta = 100 * (finals[rule] - finals["bp"])
            text += f" (Δ {delta:+.2f} pp vs bp)"
        parts.append(text)
    out.append(f"Final test accuracy, mean over {seeds} seed(s): " + "; ".join(parts) + ".")
    ranked = sorted((r for r in data.rules if finite(finals[r])), key=lambda r: -finals[r])
    if len(ranked) > 1:
        out.append(f"Ranking by final test accuracy: {' > '.join(ranked)}.")
    diverged = [
        f"{r} ({b.get('status')})"
        for r, b in blocks.items()
        if b.get("status") not in (None, "completed")
    ]
    if diverged:
        out.append("Runs that diverged: " + ", ".join(diverged) + ".")
    aligned = [
        f"{r} {m:.1f}°"
        for r in data.rules
        if r != "bp" and (m := _mean_alignment(blocks[r])) is not None
    ]
    if aligned:
        out.append(
            "Final alignment angle between W and B, mean over layers: " + ", ".join(aligned) + "."
        )
    for chip in data.chips:
        cb = {r: data.rule_summary(chip, r) for r in data.rules}
        transport = ", ".join(
            f"{r} {format_si(cb[r]['weight_transport_bits'], 'bit')}" for r in data.rules
        )
        sync = ", ".join(f"{r} {format_si(cb[r]['sync_write_bits'], 'bit')}" for r in data.rules)
        feedback = ", ".join(
            f"{r} {format_si(cb[r]['feedback_read_bits'], 'bit')}" for r in data.rules
        )
        text = (
            f"Chip {chip}, per training step: weight transport over the interconnect: "
            f"{transport}; mirror synchronization writes: {sync}; feedback-weight reads: "
            f"{feedback}"
        )
        generated = {
            r: data.simulations[chip][r].get("feedback_generated_values", 0) for r in data.rules
        }
        if any(generated.values()):
            text += "; feedback values regenerated by the PRNG: " + ", ".join(
                f"{r} {format_si(v, '')}".rstrip() for r, v in generated.items()
            )
        out.append(text + ".")
        energy = ", ".join(
            f"{r} {format_si(cb[r]['energy_pj']['total'] * 1e-12, 'J')}" for r in data.rules
        )
        latency = ", ".join(f"{r} {format_si(cb[r]['latency_s'], 's')}" for r in data.rules)
        text = f"Chip {chip}: energy per step {energy}; latency per step {latency}."
        if "bp" in data.rules:
            ratios = [
                f"{r} {ratio['energy_per_step']:.3f}× energy, "
                f"{ratio['latency_per_step']:.3f}× latency"
                for r in data.rules
                if r != "bp"
                and (ratio := cb[r].get("ratios_to_bp"))
                and finite(ratio.get("energy_per_step"))
                and finite(ratio.get("latency_per_step"))
            ]
            if ratios:
                text += " Relative to bp: " + "; ".join(ratios) + "."
        out.append(text)
    return out


HOW_TO_READ = (
    "**How to read this.** Every rule trains the same network on the same data, from the same "
    "initial weights and batch order; only the error signal differs. BP sends errors down "
    "through the forward weights W, so the unit that computes errors must read W where the "
    "forward pass keeps it and carry it over the interconnect: that is **weight transport** "
    "(`weight transport` column, hatched interconnect bars in the timeline). A BP chip that "
    "instead keeps a mirror copy of W beside its error unit must rewrite that copy after every "
    "update: **synchronization** writes (`sync writes` column). FA and IFA send errors through "
    "a fixed feedback matrix B stored beside the error unit (`feedback reads`): no transport, "
    "no synchronization; IFA starts with B = W₀, FA with an independent random B. Per-step "
    "numbers are for one step of the nominal batch; run numbers cover every epoch plus one-time "
    "initialization. Ratios are this rule ÷ BP on the same chip; below 1 means cheaper (or, for "
    "accuracy, worse)."
)


def _header_lines(data: RunData) -> list[str]:
    s = data.summary
    exp = s.get("experiment") or {}
    cfg = data.config

    def pick(section: str, key: str, config_key: str | None = None) -> Any:
        value = (exp.get(section) or {}).get(key) if isinstance(exp.get(section), dict) else None
        return value if value is not None else cfg.get(config_key or key)

    d = s["data"]
    network = pick("network", "model")
    depth, width = pick("network", "depth"), pick("network", "width")
    shape = ", ".join(f"{k} {v}" for k, v in (("depth", depth), ("width", width)) if v is not None)
    wb, ab = pick("quantization", "weight_bits"), pick("quantization", "act_bits")
    fb = pick("quantization", "feedback_bits")
    quant = (
        f"weights {wb} bit, activations {ab} bit, feedback {fb if fb is not None else wb} bit"
        + (" (32 = float)" if 32 in (wb, ab) else "")
    )
    opt = pick("training", "optimizer")
    opt_text = f"{opt}, lr {pick('training', 'lr')}, schedule {pick('training', 'schedule')}"
    if opt == "sgd":
        opt_text += f", momentum {pick('training', 'momentum')}"
    rules = ", ".join(data.rules)
    chips = ", ".join(data.chips)
    name = exp.get("name") if isinstance(exp, dict) else None
    lines = [
        f"Experiment: {name}" + (f" — {exp.get('description')}" if exp.get("description") else "")
        if name
        else "",
        f"Dataset: {d.get('dataset')}, {d.get('train_samples'):,} training and "
        f"{d.get('test_samples'):,} test samples",
        f"Network: {network}" + (f" ({shape})" if shape else ""),
        f"Quantization: {quant}",
        f"Optimizer: {opt_text}; batch size {pick('training', 'batch_size')}",
        f"Epochs: {pick('training', 'epochs')}; seeds: {', '.join(str(x) for x in s['seeds'])}",
        f"Rules: {rules}; chips: {chips}",
        f"hwsim {s.get('hwsim_version', '?')}, summary format {s['format']} v{s['version']}",
    ]
    return [line for line in lines if line]


def build_blocks(data: RunData, figures: Sequence[Figure]) -> list[Block]:
    """The report as blocks, in reading order."""
    by_name = {f.name: f for f in figures}
    blocks: list[Block] = [("h1", "Learning rules on chip: memory-access report")]
    blocks.append(("list", _header_lines(data)))
    blocks.append(("p", HOW_TO_READ))
    blocks.append(("h2", "Findings"))
    blocks.append(("list", findings(data)))
    blocks.append(("h2", "Summary"))
    blocks.append(("table", summary_table(data)))
    blocks.append(("h2", "Learning curves"))
    blocks.append(("figure", by_name["learning_curves.png"]))
    blocks.append(("h2", "Alignment angle over training"))
    blocks.append(
        (
            "p",
            "Angle between each layer's forward weights W and its feedback matrix B "
            "(0° = B equals W, as BP uses; 90° = unrelated).",
        )
    )
    blocks.append(("figure", by_name["alignment.png"]))
    for chip in data.chips:
        suffix = f", chip {chip}" if len(data.chips) > 1 else ""
        name = _safe_name(chip)
        blocks.append(("h2", f"Energy breakdown per rule{suffix}"))
        blocks.append(("figure", by_name[f"energy_{name}.png"]))
        blocks.append(("h2", f"Weight accesses per memory level{suffix}"))
        blocks.append(
            (
                "p",
                "Bits per training step of the forward weights, BP's mirror and the "
                "feedback weights, by level and direction (`transport` = W read for "
                "BP's error unit).",
            )
        )
        blocks.append(("figure", by_name[f"accesses_{name}.png"]))
        blocks.append(("h2", f"Timeline of one training step{suffix}"))
        blocks.append(
            (
                "p",
                "One row per compute unit, link and memory; bars are busy intervals "
                "coloured by phase. Stall = cycles a unit waited for a busy memory "
                "or link.",
            )
        )
        blocks.append(("figure", by_name[f"timeline_{name}.png"]))
    blocks.append(("h2", "Chip and experiment"))
    for chip in data.chips:
        copy = data.summary["chips"][chip].get("copy", f"chips/{chip}.yaml")
        blocks.append(("h3", f"Chip {chip} (`{copy}`)"))
        blocks.append(("code", data.chip_texts[chip]))
    blocks.append(("h3", "Experiment (`experiment.yaml`)"))
    blocks.append(("code", data.experiment_text))
    return blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return fence


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as Markdown (figures linked under ``figures/``)."""
    out: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + payload)
        elif kind == "p":
            out.append(payload)
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in payload))
        elif kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in payload.headers) + " |"]
            lines.append(
                "|"
                + "|".join("---" if i < 3 else "---:" for i in range(len(payload.headers)))
                + "|"
            )
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in payload.rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{payload.alt}](figures/{payload.name})")
        elif kind == "code":
            fence = _fence(payload)
            out.append(f"{fence}yaml\n{payload.rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 78rem; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd;
       padding-bottom: .2rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; font-size: .85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; }
th { background: #f3f3f3; } td { text-align: right; font-variant-numeric: tabular-nums; }
td:nth-child(-n+3) { text-align: left; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .8rem; }
code { background: #f0f0f0; padding: 0 .2rem; }
pre code { background: none; padding: 0; }
"""


def render_html(blocks: Sequence[Block]) -> str:
    """The blocks as one self-contained HTML page: inline CSS, figures as data URIs, no JS."""
    title = next((p for k, p in blocks if k == "h1"), "hwsim report")
    body: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline_html(payload)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(payload)}</p>")
        elif kind == "list":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in payload)
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in payload.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in payload.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(payload.png).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(payload.alt)}" '
                f'src="data:image/png;base64,{data}"></figure>'
            )
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(payload.rstrip())}</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- writing


def write_report(run_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into a compare run directory.

    Reads only the run directory's own files (summary.json, runs/*/metrics.jsonl,
    simulation/<chip>/<rule>.json, chips/*.yaml, experiment.yaml); raises
    :class:`~hwsim.core.errors.InputError` naming the file when one is missing or invalid. Rendering
    happens entirely in memory before anything is written, and each file is replaced
    atomically, so a failure never leaves a half-written report. The same run directory always
    gives byte-identical files. Returns the written paths (figures, then report.md, report.html).
    """
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    figures = render_figures(data)
    blocks = build_blocks(data, figures)
    markdown = render_markdown(blocks).encode("utf-8")
    page = render_html(blocks).encode("utf-8")
    figure_dir = run_dir / "figures"
    figure_dir.mkdir(exist_ok=True)
    written = []
    for figure in figures:
        write_atomic(figure_dir / figure.name, figure.png)
        written.append(figure_dir / figure.name)
    for name, content in (("report.md", markdown), ("report.html", page)):
        write_atomic(run_dir / name, content)
        written.append(run_dir / name)
    return written
