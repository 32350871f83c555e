"""The conclusion that opens a compare report: which rule wins on accuracy, energy and latency.

:func:`conclusion` reads only a ``summary.json`` document (docs/compare.md) and writes two to
four sentences computed from its numbers; nothing in them is written in advance. The rules it
follows, in the words the report uses:

- accuracy is the final test accuracy, mean ± sample standard deviation over the seeds, with
  the number of seeds; one seed measures no spread, so only the mean is shown ("1 seed");
- two rules are *within the seed spread* of each other when their means differ by no more than
  the larger of their two standard deviations; then no winner is declared. With one seed only
  an equal mean (at the three decimals shown) is a tie;
- a rule that diverged on every seed is left out of the accuracy ranking and named;
- energy and latency per step are exact (no seeds): rules within :data:`SAME` of each other
  are "the same"; a saving is stated against BP when BP is compared, otherwise against the
  most expensive rule;
- given the chips' memory kinds, one sentence says what share of a step's energy goes to DRAM
  on the first chip, per rule, and which tensor takes most of it;
- with several chips, one more sentence says on which chip BP pays most for carrying W to its
  error unit (BP's energy per step over the cheapest other rule's, on each chip);
- when a chip has non-volatile levels, one last sentence says, on the first such chip, after
  how many training runs each rule's most-written cell reaches its endurance, and whether
  that rests on the measured update sparsity or is an upper bound
  (:func:`hwsim.render.wear.lifetime_sentence`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hwsim.core.stats import finite
from hwsim.core.units import format_si

__all__ = ["SAME", "conclusion", "dram_sentence", "within_spread"]

#: Relative difference below which two exact chip numbers count as the same.
SAME = 5e-4


def _n_seeds(block: Mapping[str, Any], fallback: int) -> int:
    """Seeds behind a rule's mean accuracy: its finite per-seed finals (or ``fallback``)."""
    per_seed = (block.get("test_accuracy") or {}).get("per_seed_final")
    if isinstance(per_seed, list):
        return sum(1 for v in per_seed if finite(v))
    return fallback


def _accuracy(block: Mapping[str, Any]) -> tuple[float | None, float | None]:
    acc = block.get("test_accuracy") or {}
    mean: Any = acc.get("final")
    std: Any = acc.get("final_std")
    if _n_seeds(block, 2) < 2:
        std = None  # one seed measures no spread, whatever an old summary says (never "± 0")
    return (
        float(mean) if finite(mean) else None,
        float(std) if finite(std) else None,
    )


def _acc_text(block: Mapping[str, Any]) -> str:
    """``0.909 ± 0.009``, or ``0.909`` where one seed measured no spread."""
    mean, std = _accuracy(block)
    if mean is None:
        return "no accuracy"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def within_spread(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two rule blocks' final accuracies cannot be told apart by the seeds: their means
    differ by at most the larger standard deviation (equal at three decimals without one)."""
    (ma, sa), (mb, sb) = _accuracy(a), _accuracy(b)
    if ma is None or mb is None:
        return False
    if f"{ma:.3f}" == f"{mb:.3f}":
        return True
    spreads = [s for s in (sa, sb) if s is not None]
    return bool(spreads) and abs(ma - mb) <= max(spreads)


def _points(delta: float) -> str:
    """A difference of accuracies (fractions) in percentage points, one decimal."""
    value = abs(100 * delta)
    return f"{value:.1f} point{'' if f'{value:.1f}' == '1.0' else 's'}"


def _percent(fraction: float) -> str:
    """A relative difference as a percentage with two significant digits (``12%``, ``1.2%``)."""
    value = abs(100 * fraction)
    if value >= 10:
        return f"{value:.0f}%"
    if value == 0:
        return "0%"
    digits = max(0, 1 - math.floor(math.log10(value)))
    return f"{value:.{digits}f}%"


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SAME * max(abs(a), abs(b))


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _seed_phrase(n: int) -> str:
    if n == 1:
        return "1 seed, so no spread was measured"
    return f"mean ± sample std over {n} seeds"


def accuracy_sentence(chip: str, rules: Mapping[str, Mapping[str, Any]], seeds: int) -> str:
    """Which rule learns best on ``chip`` (accuracy is the same on every chip: same runs)."""
    where = f"On {chip}"
    diverged = [r for r, b in rules.items() if b.get("status") == "diverged"]
    partly = [r for r, b in rules.items() if b.get("status") == "partly-diverged"]
    ranked = sorted(
        (r for r in rules if r not in diverged and _accuracy(rules[r])[0] is not None),
        key=lambda r: -(_accuracy(rules[r])[0] or 0.0),
    )
    counts = {r: _n_seeds(rules[r], seeds) for r in rules}
    n = max(counts.values(), default=seeds) or seeds

    def named(rule: str) -> str:
        extra = f", {counts[rule]} of {n} seeds" if counts[rule] != n else ""
        return f"{rule} ({_acc_text(rules[rule])}{extra})"

    notes = []
    if diverged:
        notes.append(
            f"{_join(diverged)} diverged on every seed and {'is' if len(diverged) == 1 else 'are'} "
            "left out of the ranking"
        )
    if partly:
        notes.append(f"{_join(partly)} diverged on some seeds (counted with their last weights)")
    tail = ("; " + "; ".join(notes)) if notes else ""
    if not ranked:
        return f"{where}, no rule has a test accuracy to compare{tail}."
    top = ranked[0]
    if len(ranked) == 1:
        alone = "the only rule compared" if len(rules) == 1 else "the only rule that learned"
        return (
            f"{where}, {top} reaches {_acc_text(rules[top])} test accuracy "
            f"({_seed_phrase(n)}); it is {alone}, so nothing is ranked{tail}."
        )
    top_mean = _accuracy(rules[top])[0] or 0.0
    tied = [top] + [r for r in ranked[1:] if within_spread(rules[top], rules[r])]
    rest = [r for r in ranked if r not in tied]
    if len(tied) == 1:
        runner = ranked[1]
        gap = top_mean - (_accuracy(rules[runner])[0] or 0.0)
        text = (
            f"{where}, {top} learns best: {_acc_text(rules[top])} test accuracy "
            f"({_seed_phrase(n)}), {_points(gap)} above {named(runner)}"
        )
        rest = ranked[2:]
    else:
        low = min(_accuracy(rules[r])[0] or 0.0 for r in tied)
        exact = all(f"{_accuracy(rules[r])[0]:.3f}" == f"{top_mean:.3f}" for r in tied)
        how = (
            "tie"
            if exact
            else f"are within the seed spread of each other ({_points(top_mean - low)} apart)"
        )
        text = (
            f"{where}, no rule wins on test accuracy ({_seed_phrase(n)}): "
            f"{_join([named(r) for r in tied])} {how}"
        )
    if rest:
        below = [
            f"{named(r)} is {_points(top_mean - (_accuracy(rules[r])[0] or 0.0))} below {top}"
            for r in rest
        ]
        text += "; " + "; ".join(below)
    if n == 1 and len(tied) == 1:
        text += "; with one seed, other seeds may not confirm these gaps"
    return text + tail + "."


def _cheapest(values: Mapping[str, float]) -> list[str]:
    low = min(values.values())
    return [r for r, v in values.items() if _same(v, low)]


def cost_sentence(chip: str, rules: Mapping[str, Mapping[str, Any]]) -> str:
    """Which rule costs least energy and time per step on ``chip``, and how much less."""
    energy = {r: float(b["energy_pj"]["total"]) for r, b in rules.items()}
    latency = {r: float(b["latency_s"]) for r, b in rules.items()}
    if len(rules) == 1:
        (rule,) = rules
        return (
            f"One step costs {rule} {format_si(energy[rule] * 1e-12, 'J')} and "
            f"{format_si(latency[rule], 's')} on {chip}."
        )
    diverged = {r for r, b in rules.items() if b.get("status") == "diverged"}

    def part(values: Mapping[str, float], unit: str, what: str, less: str) -> str:
        best = _cheapest(values)
        worst = max(values, key=lambda r: values[r])
        if all(_same(v, values[best[0]]) for v in values.values()):
            return f"{what} is the same for every rule ({format_si(values[best[0]], unit)})"
        ref = "bp" if "bp" in values and "bp" not in best else worst
        saving = 1 - values[best[0]] / values[ref]
        flagged = [f"{r} (diverged)" if r in diverged else r for r in best]
        verb = "is" if len(best) == 1 else "are"
        text = (
            f"{_join(flagged)} {verb} {less} on {what} at {format_si(values[best[0]], unit)}, "
            f"{_percent(saving)} below {ref} ({format_si(values[ref], unit)})"
        )
        same_as_ref = [
            r for r in values if r not in best and r != ref and _same(values[r], values[ref])
        ]
        if same_as_ref:
            text += (
                f", which {_join(same_as_ref)} {'matches' if len(same_as_ref) == 1 else 'match'}"
            )
        return text

    energy_text = part(
        {r: v * 1e-12 for r, v in energy.items()}, "J", "energy per step", "cheapest"
    )
    latency_text = part(latency, "s", "latency per step", "fastest")
    return f"On {chip}, {energy_text}; {latency_text}."


def chips_sentence(summary: Mapping[str, Any]) -> str | None:
    """On which chip BP's weight transport costs most: BP's energy per step over the cheapest
    other rule's, per chip. ``None`` with one chip, or without BP and another rule."""
    chips = list(summary.get("chip_order") or [])
    rules = list(summary.get("rule_order") or [])
    others = [r for r in rules if r != "bp"]
    if len(chips) < 2 or "bp" not in rules or not others:
        return None
    extra: dict[str, tuple[float, str]] = {}
    for chip in chips:
        blocks = summary["chips"][chip]["rules"]
        bp = float(blocks["bp"]["energy_pj"]["total"])
        cheapest = min(others, key=lambda r: float(blocks[r]["energy_pj"]["total"]))
        extra[chip] = (bp / float(blocks[cheapest]["energy_pj"]["total"]) - 1, cheapest)
    order = sorted(chips, key=lambda c: -extra[c][0])
    top = order[0]
    value, rule = extra[top]
    if all(_same(1 + extra[c][0], 1 + value) for c in chips):
        return (
            f"BP's extra energy per step over the cheapest other rule is the same on all "
            f"{len(chips)} chips ({_percent(value)})."
        )
    if value <= 0:
        return (
            f"On none of the {len(chips)} chips does BP use more energy per step than the "
            "cheapest other rule: carrying W to the error unit costs nothing extra here."
        )
    rest = ", ".join(f"{_percent(extra[c][0])} on {c}" for c in order[1:])
    return (
        f"Of the {len(chips)} chips, {top} makes BP's weight transport costliest: BP uses "
        f"{_percent(value)} more energy per step than {rule} there, against {rest}."
    )


def dram_sentence(
    chip: str, rules: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str]
) -> str | None:
    """What share of a step's energy goes to DRAM on ``chip`` (``kinds``: memory name → kind),
    per rule, and which tensor takes most of it. ``None`` for a chip without a DRAM."""
    drams = {level for level, kind in kinds.items() if kind == "dram"}
    if not drams:
        return None
    dram: dict[str, float] = {}
    by_tensor: dict[str, dict[str, float]] = {}  # rule → tensor → DRAM energy
    for rule, block in rules.items():
        energy = block["energy_pj"]
        dram[rule] = sum(
            float(v) for lv, v in (energy.get("memory_by_level") or {}).items() if lv in drams
        )
        tensors_pj = by_tensor.setdefault(rule, {})
        for level, tensors in (block.get("counts") or {}).items():
            if level not in drams:
                continue
            for tensor, phases in tensors.items():
                for directions in phases.values():
                    for c in directions.values():
                        tensors_pj[tensor] = tensors_pj.get(tensor, 0.0) + float(c["energy_pj"])
    if not any(dram.values()):
        return f"On {chip}, no step energy goes to DRAM."

    def grouped(values: Mapping[str, str]) -> list[str]:
        groups: dict[str, list[str]] = {}
        for rule, text in values.items():
            groups.setdefault(text, []).append(rule)
        return [f"{text} of " + _join([r + "'s" for r in rs]) for text, rs in groups.items()]

    shares = {r: f"{100 * v / float(rules[r]['energy_pj']['total']):.0f}%" for r, v in dram.items()}
    text = f"On {chip}, DRAM takes " + ", ".join(grouped(shares)) + " energy per step"
    totals: dict[str, float] = {}
    for tensors_pj in by_tensor.values():
        for tensor, value in tensors_pj.items():
            totals[tensor] = totals.get(tensor, 0.0) + value
    if totals:
        top = max(totals, key=lambda t: totals[t])
        parts = {}
        for rule, tensors_pj in by_tensor.items():
            whole = sum(tensors_pj.values())
            if whole:
                share = tensors_pj.get(top, 0.0) / whole
                parts[rule] = "all" if share >= 0.995 else _percent(share)
        text += f"; {top} take " + ", ".join(grouped(parts)) + " DRAM energy"
    return text + "."


def conclusion(
    summary: Mapping[str, Any], kinds: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """Two to six sentences that open the report, computed from ``summary`` (module
    docstring): accuracy on the first chip, energy and latency there, DRAM's share of a step
    there (when ``kinds``, chip → memory name → kind, is given and the chip has a DRAM),
    across chips when there are several, and the lifetime of non-volatile cells when a chip
    has them."""
    from hwsim.render.wear import lifetime_sentence  # it imports the figure module

    chips = list(summary["chip_order"])
    rules = list(summary["rule_order"])
    first = chips[0]
    blocks = {r: summary["chips"][first]["rules"][r] for r in rules}
    seeds = len(summary.get("seeds") or []) or 1
    label = first if len(chips) == 1 else f"{first} (the first of {len(chips)} chips)"
    out = [accuracy_sentence(label, blocks, seeds), cost_sentence(first, blocks)]
    dram = dram_sentence(first, blocks, (kinds or {}).get(first, {}))
    if dram:
        out.append(dram)
    across = chips_sentence(summary)
    if across:
        out.append(across)
    lifetime = lifetime_sentence(summary, kinds)
    if lifetime:
        out.append(lifetime)
    return out
