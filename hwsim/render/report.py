"""The human report of a compare run: ``report.md``, a self-contained ``report.html``, figures.

:func:`write_report` reads only the files of a compare run directory (docs/compare.md) and
writes the report next to them, so ``hwsim report RUN_DIR`` regenerates it without retraining.
Everything is rendered in memory first and then written file by file atomically (``name.tmp`` →
``os.replace``): a failure while rendering leaves a previous report untouched.

The report is built once as a list of blocks (headings, paragraphs, tables, figures, code) and
rendered twice, as Markdown and as HTML, so the two always say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwsim.core.files import write_atomic
from hwsim.core.stats import finite
from hwsim.core.units import MISSING, column_scale, format_si, format_sig
from hwsim.render.compare_figures import Figure, figure_stem, render_figures
from hwsim.render.compare_run import RunData, load_run, saved_number
from hwsim.render.conclusion import conclusion
from hwsim.render.markup import Block, Table, render_html, render_markdown
from hwsim.render.wear import (
    WEAR_FIGURE,
    has_wear,
    sparsity_lines,
    sparsity_table,
    wear_table,
)
from hwsim.render.where import (
    chip_yaml_diff,
    cross_chip_table,
    dram_findings,
    layer_energy_table,
    level_energy_table,
    placement_table,
    spill_lines,
)
from hwsim.sim.dataflow import PHASES
from hwsim.sim.explain import CAUSE_LABELS, CAUSES
from hwsim.sim.loops import orders_taken

__all__ = ["write_report"]


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
    one_seed = len(data.summary.get("seeds") or []) == 1  # no spread measured: never "± 0.00"
    rows = []
    for chip, rule, b in blocks:
        acc = b.get("test_accuracy", {})
        run = run_j(b)
        row = [
            chip,
            rule,
            str(b.get("status", MISSING)),
            _pct_mean_std(acc.get("final"), None if one_seed else acc.get("final_std")),
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


#: A cause smaller than this fraction of BP's step energy is floating-point noise: shown as 0.
NOISE = 1e-9


def _gaps(data: RunData, chip: str) -> dict[str, dict[str, Any]]:
    """Rule → its ``gap_to_bp`` block on ``chip`` (rules without one, BP included, left out)."""
    out = {}
    for rule in data.rules:
        gap = data.rule_summary(chip, rule).get("gap_to_bp")
        if rule != "bp" and isinstance(gap, dict):
            out[rule] = gap
    return out


def _cleaned(energy: dict[str, Any]) -> dict[str, float]:
    """The causes of an energy gap, with floating-point noise (|x| < NOISE × BP) set to 0."""
    floor = NOISE * abs(saved_number(energy.get("bp")))
    causes = energy.get("causes")  # a run saved before a cause existed lacks it: 0 there
    causes = causes if isinstance(causes, dict) else {}
    return {k: (v if abs(v := saved_number(causes.get(k))) >= floor else 0.0) for k in CAUSES}


def _signed_j(pj: float) -> str:
    """Picojoules as signed joules with an SI prefix (``+4.87 µJ``, ``−37.4 µJ``, ``0 J``)."""
    if pj == 0:
        return "0 J"
    text = format_si(abs(pj) * 1e-12, "J")
    return ("+" if pj > 0 else "−") + text


def _share(value: float, total: float) -> str:
    """``value`` as a signed percentage of ``total`` (``−`` as the minus sign)."""
    if not total:
        return MISSING
    text = f"{100 * value / total:+.1f} %"
    return "0.0 %" if text in ("+0.0 %", "-0.0 %") else text.replace("-", "−")


def _signed_int(value: Any) -> str:
    """A signed integer with thousands separators (``+46,053``, ``−2,396``, ``0``)."""
    v = int(value)
    return f"{v:+,}".replace("-", "−") if v else "0"


def _leading(energy: dict[str, Any]) -> tuple[str, float]:
    """The leading cause of an energy gap and its value in pJ (a net cause included)."""
    lead = str(energy.get("leading_cause", ""))
    causes = _cleaned(energy)
    if lead in causes:
        return lead, causes[lead]
    # a net cause: the error unit's weight operand, BP's minus the rule's
    return lead, float((energy.get("net_causes") or {}).get(lead, math.nan))


def gap_table(data: RunData, chip: str) -> Table | None:
    """ "Where BP's extra energy goes": BP − rule per step by cause, with its share of the gap.

    A cause column is shown when it is non-zero for some rule (``other`` always); the one-time
    init difference stands apart, after the per-step causes. ``None`` without BP.
    """
    gaps = _gaps(data, chip)
    if not gaps:
        return None
    causes = {rule: _cleaned(g["energy_pj"]) for rule, g in gaps.items()}
    shown = [c for c in CAUSES if c == "other" or any(v[c] for v in causes.values())]
    headers = ["rule", "BP − rule / step"]
    headers += [f"{CAUSE_LABELS[c]} (share)" for c in shown]
    headers += ["leading cause", "init, one-time (BP − rule)"]
    rows = []
    for rule, gap in gaps.items():
        energy = gap["energy_pj"]
        total = saved_number(energy.get("difference"))
        row = [rule, _signed_j(total)]
        row += [f"{_signed_j(causes[rule][c])} ({_share(causes[rule][c], total)})" for c in shown]
        lead, value = _leading(energy)
        row += [
            f"{CAUSE_LABELS.get(lead, MISSING)} ({_signed_j(value)}, {_share(value, total)})",
            _signed_j(saved_number(energy.get("init_difference"))),
        ]
        rows.append(row)
    return Table(headers, rows)


def other_lines(data: RunData, chip: str) -> list[str]:
    """Per rule, the ``other`` cause named by tensor (``other_by_tensor`` of the gap; a saved
    run from before it existed has none), largest first; rules whose ``other`` is nil left out."""
    out = []
    for rule, gap in _gaps(data, chip).items():
        named = gap["energy_pj"].get("other_by_tensor")
        parts = [
            (t, saved_number(pj)) for t, pj in (named.items() if isinstance(named, dict) else [])
        ]
        if parts:
            named = ", ".join(f"{tensor.replace('_', ' ')} {_signed_j(pj)}" for tensor, pj in parts)
            out.append(f"{rule}: {named}")
    return out


def latency_gap_table(data: RunData, chip: str) -> Table | None:
    """BP − rule latency per step, per phase, and in the error unit's stalls (cycles)."""
    gaps = _gaps(data, chip)
    if not gaps:
        return None
    headers = ["rule", "BP − rule / step (cycles)"]
    headers += [f"{p} phase (cycles)" for p in PHASES]
    headers += ["error-unit stalls (cycles)"]
    rows = []
    for rule, gap in gaps.items():
        lat = gap["latency_cycles"]
        row = [rule, _signed_int(lat["difference"])]
        row += [_signed_int(lat["by_phase"].get(p, 0)) for p in PHASES]
        row += [_signed_int(lat["error_stall_difference"])]
        rows.append(row)
    return Table(headers, rows)


def floor_table(data: RunData) -> Table | None:
    """Energy per step against each rule's compulsory floor, one row per chip and rule."""
    blocks = [(c, r, data.rule_summary(c, r)) for c in data.chips for r in data.rules]
    if not all(isinstance(b.get("floor_pj"), dict) for *_, b in blocks):
        return None
    headers = [
        "chip",
        "rule",
        "energy / step",
        "floor / step",
        "floor: memory",
        "floor: compute",
        "energy ÷ floor (×)",
    ]
    rows = []
    for chip, rule, b in blocks:
        floor = b["floor_pj"]
        ratio = b.get("energy_over_floor")
        rows.append(
            [
                chip,
                rule,
                format_si(b["energy_pj"]["total"] * 1e-12, "J"),
                format_si(floor["total"] * 1e-12, "J"),
                format_si(floor["memory"] * 1e-12, "J"),
                format_si(floor["compute"] * 1e-12, "J"),
                f"{ratio:.3f}" if finite(ratio) else MISSING,
            ]
        )
    return Table(headers, rows)


def gap_findings(data: RunData, chip: str) -> list[str]:
    """One sentence per non-BP rule: BP − rule per step, its leading cause, every other cause."""
    out = []
    for rule, gap in _gaps(data, chip).items():
        energy = gap["energy_pj"]
        total = saved_number(energy.get("difference"))
        causes = _cleaned(energy)
        lead, lead_value = _leading(energy)
        named = ", ".join(f"{CAUSE_LABELS[c]} {_signed_j(v)}" for c, v in causes.items() if v)
        out.append(
            f"Chip {chip}: BP − {rule} = {_signed_j(total)} of energy per step; leading cause: "
            f"{CAUSE_LABELS.get(lead, lead)} ({_signed_j(lead_value)}, "
            f"{_share(lead_value, total)} of the gap)"
            + (f"; by cause: {named}" if named else "")
            + "."
        )
    return out


def loop_order_finding(data: RunData, chip: str) -> str | None:
    """Which loop orders the simulator chose on ``chip``, counted over layers, per phase."""
    described: dict[str, list[str]] = {}
    for rule in data.rules:
        orders = data.simulations[chip][rule].get("loop_orders") or {}
        parts = [
            f"{phase} " + ", ".join(f"{n} ×{c}" for n, c in taken.items())
            for phase, taken in orders_taken(orders).items()
            if taken
        ]
        if parts:
            described.setdefault("; ".join(parts), []).append(rule)
    if not described:
        return None
    text = " | ".join(f"{', '.join(rules)}: {parts}" for parts, rules in described.items())
    return f"Chip {chip}, loop orders chosen (layers per order): {text}."


def survey_table(data: RunData) -> Table | None:
    """BP against each other rule on every shipped chip, same workloads (``chip_survey``)."""
    survey = data.summary.get("chip_survey") or []
    others = [r for r in data.rules if r != "bp"]
    if not survey or "bp" not in data.rules or not others:
        return None
    headers = [
        "chip",
        "in this report",
        "area (mm²)",
        "bp energy / step (µJ)",
        "bp latency / step (ms)",
    ]
    for rule in others:
        headers += [f"{rule} energy ÷ bp (×)", f"{rule} latency ÷ bp (×)"]
    headers += ["leading cause of bp's extra energy", "silicon of each rule's own tensors (mm²)"]
    rows = []
    for entry in survey:
        rules = entry["rules"]
        bp = rules["bp"]
        area = entry.get("area_mm2")
        row = [
            entry["chip"],
            "yes" if entry.get("in_report") else "no",
            format_sig(area) if finite(area) else MISSING,
            format_sig(bp["energy_pj"] * 1e-6),
            format_sig(bp["latency_s"] * 1e3),
        ]
        for rule in others:
            r = rules.get(rule, {})
            row += [
                f"{r['energy_vs_bp']:.3f}" if finite(r.get("energy_vs_bp")) else MISSING,
                f"{r['latency_vs_bp']:.3f}" if finite(r.get("latency_vs_bp")) else MISSING,
            ]
        causes = {rules[r].get("gap_leading_cause") for r in others if r in rules} - {None}
        row.append(", ".join(CAUSE_LABELS.get(c, c) for c in sorted(causes)) or MISSING)
        row.append(own_silicon_text(rules) or MISSING)
        rows.append(row)
    return Table(headers, rows)


#: How the survey names a rule's own tensors.
_OWN_TENSOR_LABELS = {"weight_mirror": "mirror", "feedback_weights": "feedback"}


def own_silicon_text(rules: dict[str, Any]) -> str:
    """Each rule's own tensors and the area of the levels holding them, rules with the same
    grouped: ``bp: mirror 3.77 (err_weight_sram); fa, ifa: feedback 3.77 (err_weight_sram)``."""
    described: dict[str, list[str]] = {}
    for rule, r in rules.items():
        parts = [
            f"{_OWN_TENSOR_LABELS.get(tensor, tensor)} "
            f"{format_sig(s['area_mm2']) if finite(s.get('area_mm2')) else MISSING} "
            f"({', '.join(s['levels'])})"
            for tensor, s in (r.get("own_silicon") or {}).items()
        ]
        if parts:
            described.setdefault(", ".join(parts), []).append(rule)
    return "; ".join(f"{', '.join(rules)}: {parts}" for parts, rules in described.items())


def survey_findings(data: RunData) -> list[str]:
    """How BP's extra energy over each rule ranges across the shipped chips."""
    survey = data.summary.get("chip_survey") or []
    out = []
    for rule in (r for r in data.rules if r != "bp"):
        ratios = [
            (e["rules"][rule]["energy_vs_bp"], e["chip"])
            for e in survey
            if rule in e["rules"] and finite(e["rules"][rule].get("energy_vs_bp"))
        ]
        if len(ratios) < 2:
            continue
        low, high = min(ratios), max(ratios)
        out.append(
            f"Across {len(ratios)} chips, {rule} costs {100 * low[0]:.2f} % ({low[1]}) to "
            f"{100 * high[0]:.2f} % ({high[1]}) of bp's energy per step on the same workload."
        )
    if out:
        out.append(
            "How much a rule saves depends on how the chip gets W (or its sign) to its error "
            "unit, and on what the rule reads, writes and computes instead."
        )
    # one line per rule and reason: chips refuse a rule for different reasons (a PRNG cannot
    # hold KP's changing B; compute-in-memory arrays do not model the sign rules or KP)
    refused: dict[tuple[str, str], list[str]] = {}
    for entry in survey:
        for rule, reason in (entry.get("unsupported") or {}).items():
            why = str(reason).split(": ", 2)[-1]  # past FILE:LINE: key
            refused.setdefault((rule, why), []).append(entry["chip"])
    for (rule, why), chips in refused.items():
        out.append(f"{rule} cannot train on {', '.join(chips)} (not simulated there): {why}.")
    for entry in survey:
        mirror = (entry["rules"].get("bp", {}).get("own_silicon") or {}).get("weight_mirror")
        area = entry.get("area_mm2")
        if mirror and finite(mirror.get("area_mm2")) and finite(area) and area:
            out.append(
                f"On {entry['chip']}, bp's weight mirror lives in {', '.join(mirror['levels'])}: "
                f"{format_sig(mirror['area_mm2'])} mm² of the chip's {format_sig(area)} mm² "
                f"({100 * mirror['area_mm2'] / area:.1f} %; its bits fill "
                f"{format_sig(mirror['occupied_mm2'])} mm² of it)."
            )
    for entry in survey:
        savings = entry.get("prng_against_stored") or []
        if not savings:
            continue
        parts = ", ".join(
            f"{s['rule']} {100 * s['reduction']:+.2f} % "
            f"({s['stored_accesses']:,} → {s['prng_accesses']:,})"
            for s in savings
        )
        out.append(
            f"On {entry['chip']}, regenerating the feedback with the PRNG instead of storing it in "
            f"{savings[0]['level']} changes a step's DRAM accesses by: {parts}. Published DFA "
            "processors report −42.8 % of all external memory accesses (DF-LNPU, JSSC 2021); "
            "docs/simulator.md says why this workload differs."
        )
    return out


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
    over = f"mean over {seeds} seeds" if seeds > 1 else "1 seed"
    out.append(f"Final test accuracy, {over}: " + "; ".join(parts) + ".")
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
        out += gap_findings(data, chip)
        orders = loop_order_finding(data, chip)
        if orders:
            out.append(orders)
        ratios = [
            f"{r} {v:.2f}×"
            for r in data.rules
            if finite(v := data.rule_summary(chip, r).get("energy_over_floor"))
        ]
        if ratios:
            out.append(f"Chip {chip}: energy per step ÷ its compulsory floor: {', '.join(ratios)}.")
    return out + survey_findings(data)


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
    "accuracy, worse). **Where BP's extra energy goes** splits BP − rule per step into causes "
    "computed from the priced counts (docs/simulator.md): the wire and the memory reads of "
    "weight transport, mirror synchronization and mirror reads, the rule's feedback reads and "
    "PRNG generation (negative: the rule pays them), MAC width, leakage, and the residual "
    "(placement differences), which sum exactly to the difference. BP's transport reads and the "
    "rule's feedback reads cancel when W and B are equally large and equally priced; the "
    "leading cause is judged with them netted. **Energy ÷ floor** compares a step with its "
    "compulsory energy: every stored tensor touched once where it lives, plus the MACs."
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
        _environment_line(s.get("environment")),
    ]
    return [line for line in lines if line]


def _environment_line(env: Any) -> str:
    """Where the runs were trained (summaries from before hwsim recorded it have none)."""
    if not isinstance(env, dict):
        return ""
    threads = env.get("threads")
    return (
        f"Trained on {env.get('device', '?')} ({env.get('cpu', '?')}), "
        f"{threads} torch thread{'' if threads == 1 else 's'} per run, "
        f"{env.get('workers', '?')} run(s) at once; torch {env.get('torch', '?')}, "
        f"brevitas {env.get('brevitas', '?')}, Python {env.get('python', '?')}"
    )


WEAR_INTRO = (
    "A cell of a non-volatile memory (RRAM, PCM, FeFET, MRAM) survives a limited number of "
    "program operations, its **endurance**. For every tensor stored in such a level, the table "
    "gives the program operations per cell in one training step, on average over the tensor's "
    "cells and for its most-written cell, and how many steps, and training runs of this "
    "workload, pass until that cell reaches its endurance: the first cell to fail. On a "
    "compute-in-memory level an update programs only the cells of weights whose stored integer "
    "level changed in that optimizer step; the training runs measure that fraction per layer "
    "and epoch (`update_sparsity` in each run's `workload.json`). The most-written cell is the "
    "cell of the weight that changed in the most steps of the run. Without a measurement every "
    "update programs every cell: an upper bound. A digital non-volatile level rewrites whole "
    "words, so every cell of a tensor is written as often as the tensor. One-time writes "
    "(initialization) are left out of the rates."
)


def wear_blocks(data: RunData, by_name: Mapping[str, Figure]) -> list[Block]:
    """The "Wear and lifetime" section, when a chip has non-volatile levels (else nothing)."""
    chips = [c for c in data.chips if has_wear(data.summary, c)]
    if not chips:
        return []
    blocks: list[Block] = [("h2", "Wear and lifetime"), ("p", WEAR_INTRO)]
    blocks.append(("list", sparsity_lines(data)))
    sparsity = sparsity_table(data)
    if sparsity is not None:
        blocks.append(("h3", "Measured update sparsity"))
        blocks.append(
            (
                "p",
                "Share of a layer's stored integer weight levels that one optimizer step "
                "changes: over the whole run (epochs weighted by their steps) as mean ± sample "
                "std over the seeds that measured it, and per epoch (mean over those seeds); "
                "`all layers` weights each layer by its weight count. The most-changed weight's "
                "changes ÷ the run's steps is its cell's program operations per update.",
            )
        )
        blocks.append(("table", sparsity))
    for chip in chips:
        table = wear_table(data, chip)
        if table is None:
            continue
        blocks.append(("h3", f"Wear on chip {chip}"))
        stored = any(
            (data.rule_summary(chip, r).get("wear") or {}).get("tensors") for r in data.rules
        )
        if stored:
            blocks.append(("table", table))
        else:
            blocks.append(
                (
                    "p",
                    f"Chip {chip} keeps no tensor of these workloads in its non-volatile "
                    "levels: nothing there wears.",
                )
            )
    if WEAR_FIGURE in by_name:
        blocks.append(("figure", by_name[WEAR_FIGURE]))
    return blocks


def build_blocks(data: RunData, figures: Sequence[Figure]) -> list[Block]:
    """The report as blocks, in reading order."""
    by_name = {f.name: f for f in figures}
    blocks: list[Block] = [("h1", "Learning rules on chip: memory-access report")]
    lead = " ".join(conclusion(data.summary, data.chip_kinds))
    blocks.append(("lead", "**Conclusion.** " + lead))
    blocks.append(("list", _header_lines(data)))
    blocks.append(("p", HOW_TO_READ))
    blocks.append(("h2", "Findings"))
    blocks.append(("list", findings(data)))
    blocks.append(("h2", "Summary"))
    blocks.append(("table", summary_table(data)))
    floors = floor_table(data)
    if floors is not None:
        blocks.append(("h2", "Energy against the floor"))
        blocks.append(
            (
                "p",
                "Floor = each stored tensor of each layer touched once at the level it lives in "
                "(read once; written once if the step produces or updates it) plus the step's "
                "MACs; no interconnect, PRNG or leakage. Energy ÷ floor shows how far a rule is "
                "from what its stored tensors and arithmetic cost at least.",
            )
        )
        blocks.append(("table", floors))
    survey = survey_table(data)
    if survey is not None:
        blocks.append(("h2", "The same workloads on every shipped chip"))
        blocks.append(
            (
                "p",
                "Each rule's own workload simulated on every shipped chip (ratios below 1: "
                "cheaper or faster than bp). The chips differ in how the error unit gets its "
                "weights: carried over the interconnect, kept in a mirror synchronized on chip "
                "or through DRAM, or replaced by a stored or regenerated B. `hwsim chip list` "
                "describes each. Area is the chip's silicon (memories and MAC arrays, DRAM off "
                "chip; `hwsim chip show` gives every part and its source); the last column is "
                "the area of the levels holding each rule's own tensors (BP's mirror, B, D), "
                "which other tensors may share.",
            )
        )
        blocks.append(("table", survey))
    side = cross_chip_table(data)
    if side is not None:
        blocks.append(("h2", "The report's chips side by side"))
        blocks.append(
            (
                "p",
                "Each rule's own workload on each chip of this report: energy and latency of one "
                "step, the ratio to BP on the same chip, and the share of the step's energy that "
                "goes to DRAM. Both panels of the figure share one axis across chips.",
            )
        )
        blocks.append(("table", side))
        blocks.append(("figure", by_name["chips.png"]))
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
    blocks += wear_blocks(data, by_name)
    for chip in data.chips:
        suffix = f", chip {chip}" if len(data.chips) > 1 else ""
        name = figure_stem(chip)
        blocks.append(("h2", f"Energy breakdown per rule{suffix}"))
        if len(data.chips) > 1:
            blocks.append(
                (
                    "p",
                    "Every chip's breakdown uses one y-axis and one colour per memory kind "
                    "(register file, SRAM, global buffer, DRAM); two levels of one kind differ "
                    "by hatching.",
                )
            )
        blocks.append(("figure", by_name[f"energy_{name}.png"]))
        blocks.append(("h3", f"Energy by memory level{suffix}"))
        blocks.append(("list", dram_findings(data, chip)))
        blocks.append(("table", level_energy_table(data, chip)))
        placement = placement_table(data, chip)
        if placement is not None:
            blocks.append(("h2", f"Where each tensor lives{suffix}"))
            blocks.append(
                (
                    "p",
                    "The memory level holding each stored tensor of each layer in one step "
                    "(`rules`: the rules placed this way; `all`: every rule). The mapper "
                    "chooses placement and loop nests together, at least cost (docs/simulator.md, "
                    '"The mapper"); a tensor marked `(X full)` went outward because level X '
                    "was full, one marked `(cheaper than X)` costs the step less where it is.",
                )
            )
            blocks.append(("table", placement))
            spills = spill_lines(data, chip)
            blocks.append(("list", spills or ["Nothing spilled: every tensor got its level."]))
        blocks.append(("h2", f"Energy per layer{suffix}"))
        layers = layer_energy_table(data, chip)
        if layers is None:
            blocks.append(
                (
                    "p",
                    "This run was priced before hwsim recorded a step's counts per layer; "
                    "the same `hwsim compare` again prices it anew from its trained runs "
                    "(nothing is retrained) and records them.",
                )
            )
        else:
            blocks.append(
                (
                    "p",
                    "Energy of one step per layer: its memory accesses, interconnect bits, MACs "
                    "and PRNG values, priced as the step is (share of the step's energy); the "
                    "DRAM part apart. Leakage belongs to the step, not to a layer. "
                    "`accesses.csv` has the counts behind it, one row per layer.",
                )
            )
            blocks.append(("table", layers))
            if f"layers_{name}.png" in by_name:
                blocks.append(("figure", by_name[f"layers_{name}.png"]))
        gaps = gap_table(data, chip)
        latency = latency_gap_table(data, chip)
        if gaps is not None and latency is not None:
            blocks.append(("h2", f"Where BP's extra energy goes{suffix}"))
            blocks.append(
                (
                    "p",
                    "BP − rule, energy of one step by cause (share of the difference; the "
                    "causes sum to it exactly, `other / placement` being the residual). Init "
                    "is one-time and not part of the per-step difference.",
                )
            )
            blocks.append(("table", gaps))
            named = other_lines(data, chip)
            if named:
                blocks.append(("p", "`other / placement` by tensor (what no cause claims):"))
                blocks.append(("list", named))
            if f"gap_{name}.png" in by_name:
                blocks.append(("figure", by_name[f"gap_{name}.png"]))
            blocks.append(
                (
                    "p",
                    "BP − rule latency of one step, per phase, and the error unit's extra stall "
                    "cycles (waiting for the weight memory or link). Phases overlap, so the "
                    "phase differences need not sum to the step difference.",
                )
            )
            blocks.append(("table", latency))
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
    first = data.chips[0]
    for chip in data.chips:
        copy = data.summary["chips"][chip].get("copy", f"chips/{chip}.yaml")
        if chip == first:
            blocks.append(("h3", f"Chip {chip} (`{copy}`)"))
            blocks.append(("code", data.chip_texts[chip]))
            continue
        blocks.append(("h3", f"Chip {chip} (`{copy}`), as a diff against {first}"))
        diff = chip_yaml_diff(data, chip)
        blocks.append(("diff", diff) if diff else ("p", f"Identical to {first}'s file."))
    blocks.append(("h3", "Experiment (`experiment.yaml`)"))
    blocks.append(("code", data.experiment_text))
    return blocks


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
