"""Where things live and what they cost: the placement, energy-by-level, per-layer and cross-chip
tables of a compare report, and the sentences that go with them.

Everything here is computed from a :class:`~hwsim.render.compare_run.RunData`: the placement and
spills of ``simulation/<chip>/<rule>.json``, the energy split of ``summary.json`` (``energy_pj``,
``counts``, ``energy_by_layer_pj``) and the chip YAML copies (memory ``kind``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from hwsim.core.stats import finite
from hwsim.core.units import MISSING, format_si
from hwsim.render.compare_run import RunData
from hwsim.render.markup import Table
from hwsim.sim.pricing import ENERGY_PARTS

__all__ = [
    "TENSOR_ORDER",
    "chip_yaml_diff",
    "cross_chip_table",
    "dram_findings",
    "kind_energy_pj",
    "layer_energy_table",
    "level_energy_table",
    "placement_table",
    "spill_lines",
]

#: Stored tensors in the order the tables list them (others follow, sorted).
TENSOR_ORDER = (
    "weights",
    "weight_mirror",
    "feedback_weights",
    "activations",
    "errors",
    "gradients",
    "optimizer_state",
)
#: The memory kind whose share of a step the report singles out.
OFF_CHIP = "dram"
_PART_LABELS = {
    "interconnect": "interconnect",
    "compute": "compute (MACs)",
    "feedback_generation": "feedback generation (PRNG)",
    "leakage": "leakage",
}


def _share(value: float, total: float) -> str:
    return f"{100 * value / total:.1f} %" if total else MISSING


def _j(pj: float) -> str:
    return format_si(pj * 1e-12, "J")


def _tensors(present: set[str]) -> list[str]:
    return [t for t in TENSOR_ORDER if t in present] + sorted(present - set(TENSOR_ORDER))


def _spills(data: RunData, chip: str, rule: str) -> dict[tuple[str, str], dict[str, Any]]:
    spills = data.simulations[chip][rule].get("spills") or []
    return {(s["tensor"], s["layer"]): s for s in spills}


def placement_table(data: RunData, chip: str) -> Table | None:
    """Which level holds each tensor of each layer on ``chip``, one row per tensor (one per
    group of rules where the rules place it differently); a level taken because the preferred
    one was full reads ``dram (global_buffer full)``, one the mapper found cheaper
    ``act_sram (cheaper than weight_sram)``. ``None`` when the run has no placement."""
    placements = {r: data.simulations[chip][r].get("placement") or {} for r in data.rules}
    if not any(placements.values()):
        return None
    layers = data.layers(chip)
    rows = []
    for tensor in _tensors({t for p in placements.values() for t in p}):
        groups: dict[tuple[str, ...], list[str]] = {}
        for rule in data.rules:
            where = placements[rule].get(tensor)
            if not where:
                continue
            spills = _spills(data, chip, rule)
            cells = []
            for layer in layers:
                level = where.get(layer)
                spill = spills.get((tensor, layer))
                if level is None:
                    cells.append(MISSING)
                elif spill is not None and spill.get("why", "full") == "full":
                    cells.append(f"{level} ({spill['preferred']} full)")
                elif spill is not None:
                    cells.append(f"{level} (cheaper than {spill['preferred']})")
                else:
                    cells.append(level)
            groups.setdefault(tuple(cells), []).append(rule)
        for shown, rules in groups.items():
            who = (
                "all" if len(rules) == len(data.rules) and len(data.rules) > 1 else ", ".join(rules)
            )
            rows.append([tensor, who, *shown])
    return Table(["tensor", "rules", *[f"layer {name}" for name in layers]], rows)


def spill_lines(data: RunData, chip: str) -> list[str]:
    """One sentence per group of tensors placed away from their class's level: what went
    where, and why (the level was full, or the step costs less with them elsewhere)."""
    groups: dict[tuple[str, str, str, str], dict[str, list[str]]] = {}
    for rule in data.rules:
        for spill in data.simulations[chip][rule].get("spills") or []:
            why = spill.get("why", "full")
            key = (spill["tensor"], spill["preferred"], spill["placed"], why)
            layers = groups.setdefault(key, {})
            layers.setdefault(spill["layer"], []).append(rule)
    order = data.layers(chip)
    out = []
    for (tensor, preferred, placed, why), layers in groups.items():
        names = sorted(layers, key=lambda n: order.index(n) if n in order else len(order))
        rules = sorted({r for rs in layers.values() for r in rs}, key=data.rules.index)
        who = "every rule" if len(rules) == len(data.rules) else ", ".join(rules)
        reason = "which was full" if why == "full" else "where it had room: the step costs less"
        out.append(
            f"{tensor} of layer{'s' if len(names) > 1 else ''} {', '.join(names)}: in {placed} "
            f"instead of {preferred}, {reason} ({who})."
        )
    return out


def kind_energy_pj(data: RunData, chip: str, rule: str, kind: str) -> float:
    """Energy of one step spent in the memories of ``kind`` on ``chip``."""
    kinds = data.chip_kinds.get(chip, {})
    by_level = data.rule_summary(chip, rule)["energy_pj"].get("memory_by_level") or {}
    return sum(float(v) for level, v in by_level.items() if kinds.get(level) == kind)


def _levels(data: RunData, chip: str) -> list[str]:
    present = {
        lv for r in data.rules for lv in data.rule_summary(chip, r)["energy_pj"]["memory_by_level"]
    }
    order = [m for m in data.chip_memories.get(chip, []) if m in present]
    return order + sorted(present - set(order))


def level_energy_table(data: RunData, chip: str) -> Table:
    """Energy of one step by memory level (with its kind), then the other parts, per rule:
    energy and share of the step."""
    energies = {r: data.rule_summary(chip, r)["energy_pj"] for r in data.rules}
    kinds = data.chip_kinds.get(chip, {})
    rows = []

    def row(label: str, kind: str, values: Mapping[str, float]) -> list[str]:
        return [label, kind] + [
            f"{_j(values[r])} ({_share(values[r], energies[r]['total'])})" for r in data.rules
        ]

    for level in _levels(data, chip):
        values = {r: float(e["memory_by_level"].get(level, 0.0)) for r, e in energies.items()}
        rows.append(row(level, kinds.get(level, MISSING), values))
    for part in ENERGY_PARTS:
        if part == "memory":
            continue
        values = {r: float(e["breakdown"].get(part, 0.0)) for r, e in energies.items()}
        if any(values.values()):
            rows.append(row(_PART_LABELS.get(part, part), "", values))
    rows.append(row("total", "", {r: float(e["total"]) for r, e in energies.items()}))
    return Table(["part", "kind", *[f"{r}: energy / step (share)" for r in data.rules]], rows)


def _dram_by_tensor(data: RunData, chip: str, rule: str) -> dict[str, float]:
    kinds = data.chip_kinds.get(chip, {})
    out: dict[str, float] = {}
    for level, tensors in data.rule_summary(chip, rule)["counts"].items():
        if kinds.get(level) != OFF_CHIP:
            continue
        for tensor, phases in tensors.items():
            for directions in phases.values():
                for c in directions.values():
                    out[tensor] = out.get(tensor, 0.0) + float(c["energy_pj"])
    return {t: v for t, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def dram_findings(data: RunData, chip: str) -> list[str]:
    """What share of a step's energy goes to DRAM on ``chip``, per rule, and to which tensors."""
    kinds = data.chip_kinds.get(chip, {})
    drams = [level for level, kind in kinds.items() if kind == OFF_CHIP]
    if not drams:
        return [f"{chip} has no memory of kind {OFF_CHIP}: no step energy goes off chip."]
    shares = []
    for rule in data.rules:
        energy = data.rule_summary(chip, rule)["energy_pj"]
        total, memory = float(energy["total"]), float(energy["breakdown"]["memory"])
        dram = kind_energy_pj(data, chip, rule, OFF_CHIP)
        shares.append(
            f"{rule} {_share(dram, total)} ({_j(dram)} of {_j(total)}; "
            f"{_share(dram, memory)} of its memory energy)"
        )
    levels = ", ".join(f"`{level}`" for level in drams)
    out = [
        f"On {chip}, the DRAM (level {levels}) takes this share of a training step's energy: "
        + "; ".join(shares)
        + "."
    ]
    for rule in data.rules:
        tensors = _dram_by_tensor(data, chip, rule)
        if tensors:
            parts = ", ".join(f"{t} {_j(v)}" for t, v in tensors.items())
            out.append(f"{rule}'s DRAM energy per step on {chip}, by tensor: {parts}.")
    return out


def layer_energy_table(data: RunData, chip: str) -> Table | None:
    """Energy of one step per layer and rule (memory, interconnect, compute, PRNG; share of the
    step) with the DRAM part apart; leakage stays unattributed. ``None`` for a run made before
    the per-layer split was recorded."""
    per_rule = {r: data.rule_summary(chip, r).get("energy_by_layer_pj") for r in data.rules}
    if not all(isinstance(v, dict) and v for v in per_rule.values()):
        return None
    kinds = data.chip_kinds.get(chip, {})
    totals = {r: float(data.rule_summary(chip, r)["energy_pj"]["total"]) for r in data.rules}
    headers = ["layer"]
    for rule in data.rules:
        headers += [f"{rule}: energy / step (share)", f"{rule}: of which DRAM"]
    rows = []
    for layer in data.layers(chip):
        row = [layer]
        for rule in data.rules:
            energy = (per_rule[rule] or {}).get(layer)
            if energy is None:
                row += [MISSING, MISSING]
                continue
            dram = sum(
                float(v)
                for lv, v in energy.get("memory_by_level", {}).items()
                if kinds.get(lv) == OFF_CHIP
            )
            row += [f"{_j(energy['total'])} ({_share(energy['total'], totals[rule])})", _j(dram)]
        rows.append(row)
    leak = ["leakage (not per layer)"]
    for rule in data.rules:
        value = float(data.rule_summary(chip, rule)["energy_pj"]["breakdown"].get("leakage", 0.0))
        leak += [f"{_j(value)} ({_share(value, totals[rule])})", ""]
    rows.append(leak)
    return Table(headers, rows)


def cross_chip_table(data: RunData) -> Table | None:
    """One row per rule and chip (grouped by rule): energy and latency per step, their ratios to
    BP on the same chip, and DRAM's share of the step. ``None`` with one chip."""
    if len(data.chips) < 2:
        return None
    has_bp = "bp" in data.rules
    headers = ["rule", "chip", "energy / step", "latency / step"]
    if has_bp:
        headers += ["energy ÷ BP (×)", "latency ÷ BP (×)"]
    headers += ["DRAM share of energy"]
    rows = []
    for rule in data.rules:
        for chip in data.chips:
            b = data.rule_summary(chip, rule)
            total = float(b["energy_pj"]["total"])
            row = [rule, chip, _j(total), format_si(float(b["latency_s"]), "s")]
            if has_bp:
                ratios = b.get("ratios_to_bp") or {}
                row += [
                    f"{ratios[k]:.3f}" if finite(ratios.get(k)) else MISSING
                    for k in ("energy_per_step", "latency_per_step")
                ]
            has_dram = OFF_CHIP in data.chip_kinds.get(chip, {}).values()
            dram = kind_energy_pj(data, chip, rule, OFF_CHIP)
            row.append(_share(dram, total) if has_dram else "no DRAM")
            rows.append(row)
    return Table(headers, rows)


def chip_yaml_diff(data: RunData, chip: str) -> str:
    """A unified diff of ``chip``'s YAML copy against the first chip's (the report shows the
    first in full and every other as this diff)."""
    first = data.chips[0]
    copies = {c: data.summary["chips"][c].get("copy", f"chips/{c}.yaml") for c in (first, chip)}
    lines = difflib.unified_diff(
        data.chip_texts[first].splitlines(keepends=True),
        data.chip_texts[chip].splitlines(keepends=True),
        fromfile=copies[first],
        tofile=copies[chip],
        n=1,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
