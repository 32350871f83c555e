"""README's and the docs' tables of measured numbers, drawn from saved runs in ``docs/results/``.

A number a reader sees in README must be one they get by running the command beside it. So the
tables are not typed: each lies between markers in a document,

    <!-- results:NAME -->
    ...generated: the table, then the command, seeds and environment it was measured with...
    <!-- /results -->

and is drawn from ``docs/results/NAME.json``, a copy of the run's own ``summary.json`` (or the
claims of ``reproduction.json``). ``tests/test_docs.py`` fails when a table and its saved run
disagree.

    python docs/results/tables.py                  # check: exit 1 and a diff when out of date
    python docs/results/tables.py --write          # redraw every table from the saved runs
    python docs/results/tables.py --store NAME FILE  # save a run's summary.json (or
                                                   # reproduction.json) as NAME, then --write
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwsim.core.files import write_atomic
from hwsim.core.units import format_si

RESULTS = Path(__file__).resolve().parent
ROOT = RESULTS.parent.parent
MARKER = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
#: Where the tables are drawn, relative to the repository root.
DOCUMENTS = ("README.md", "docs/reproduce.md", "docs/learning.md")


def _accuracy(acc: dict[str, Any], seeds: int) -> str:
    if acc.get("final") is None:
        return "—"
    text = f"{acc['final']:.3f}"
    return text + (f" ± {acc['final_std']:.3f}" if seeds > 1 else "")


def _environment(summary: dict[str, Any], command: str) -> str:
    env = summary.get("environment") or {}
    seeds = summary["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    spread = "; test accuracy is mean ± sample std over the seeds" if len(seeds) > 1 else ""
    threads = env.get("threads")
    where = (
        f"{env.get('device', '?')}, {threads} torch thread{'s' if threads != 1 else ''} per run, "
        f"{env.get('workers', '?')} run(s) at once, hwsim {env.get('hwsim', '?')}, "
        f"torch {env.get('torch', '?')}, brevitas {env.get('brevitas', '?')}, "
        f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores)"
    )
    return (
        f"Measured with `{command}`, {seed_text}{spread}; chip numbers are per training step "
        f"and exact. Environment: {where}."
    )


def _rule_rows(summary: dict[str, Any], columns: list[str]) -> list[str]:
    chip = summary["chip_order"][0]
    seeds = len(summary["seeds"])
    cells: dict[str, Callable[[str, dict[str, Any]], str]] = {
        "rule": lambda rule, r: rule,
        "test acc": lambda rule, r: _accuracy(r["test_accuracy"], seeds),
        "W∠B after training": lambda rule, r: _angle(r),
        "energy / step": lambda rule, r: format_si(r["energy_pj"]["total"] * 1e-12, "J"),
        "latency / step": lambda rule, r: format_si(r["latency_s"], "s"),
        "weight transport / step": lambda rule, r: _transport(rule, r),
        "sync writes / step": lambda rule, r: format_si(r["sync_write_bits"], "bit"),
        "feedback reads / step": lambda rule, r: format_si(r["feedback_read_bits"], "bit"),
    }
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rule in summary["rule_order"]:
        r = summary["chips"][chip]["rules"][rule]
        lines.append("| " + " | ".join(cells[c](rule, r) for c in columns) + " |")
    return lines


def _transport(rule: str, r: dict[str, Any]) -> str:
    """Weight transport per step, and where there is none but W still reaches the error unit,
    how: a synchronized mirror of W, or of its sign."""
    from hwsim.core.rules import parse_rule

    text = format_si(r["weight_transport_bits"], "bit")
    if r["weight_transport_bits"] == 0 and r["sync_write_bits"] > 0:
        text += " (sign mirror)" if parse_rule(rule).reads_weight_sign else " (mirror)"
    return text


def _angle(block: dict[str, Any]) -> str:
    angles = [a for a in (block.get("final_alignment_deg") or {}).values() if a is not None]
    if not angles:
        return "—"
    mean = sum(angles) / len(angles)
    return "0°" if mean == 0 else f"{mean:.1f}°"


def compare_default(summary: dict[str, Any]) -> str:
    """The default comparison's table (README, "What the default comparison shows")."""
    columns = ["rule", "test acc", "sync writes / step", "feedback reads / step"]
    columns += ["energy / step", "latency / step"]
    chip = summary["chip_order"][0]
    lines = _rule_rows(summary, columns)
    measured = _environment(summary, "hwsim compare --force") + f" Chip: `{chip}`."
    return "\n".join([*lines, "", measured])


def compare_survey(summary: dict[str, Any]) -> str:
    """The default workloads on every shipped chip: what FA and IFA save against BP."""
    rules = [r for r in summary["rule_order"] if r != "bp"]
    header = ["chip"] + [f"{r} energy ÷ BP" for r in rules] + [f"{r} latency ÷ BP" for r in rules]
    header.append("leading cause of BP's extra energy")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary["chip_survey"]:
        by_rule = entry["rules"]
        cells = [f"`{entry['chip']}`"]
        cells += [f"{by_rule[r]['energy_vs_bp']:.4f}" for r in rules]
        cells += [f"{by_rule[r]['latency_vs_bp']:.3f}" for r in rules]
        cause = by_rule[rules[0]]["gap_leading_cause"] if rules else None
        cells.append((cause or "—").replace("_", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_gap(summary: dict[str, Any]) -> str:
    """Where BP's extra energy per step goes against FA, cause by cause, on the default chip."""
    chip = summary["chip_order"][0]
    gap = summary["chips"][chip]["rules"]["fa"]["gap_to_bp"]["energy_pj"]
    lines = ["| cause (BP − FA) | energy / step |", "|---|---|"]
    for cause, value in gap["causes"].items():
        if abs(value) >= 1e3:  # 1 nJ: the rest are rounding residues of the split
            lines.append(f"| {cause.replace('_', ' ')} | {format_si(value * 1e-12, 'J')} |")
    total = format_si(gap["difference"] * 1e-12, "J")
    lines.append(f"| **total** (BP {_percent(gap['bp'], gap['rule'])} more than FA) | {total} |")
    return "\n".join(lines)


def _percent(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):.1f}%"


def compare_rules(summary: dict[str, Any]) -> str:
    """Every rule on the default network (README, "Every rule, trained and priced")."""
    columns = ["rule", "test acc", "W∠B after training", "energy / step", "latency / step"]
    columns += ["weight transport / step", "sync writes / step", "feedback reads / step"]
    command = "hwsim compare --experiment configs/experiments/rules.yaml --force"
    chip = summary["chip_order"][0]
    lines = _rule_rows(summary, columns)
    return "\n".join([*lines, "", _environment(summary, command) + f" Chip: `{chip}`."])


def _changed(summary: dict[str, Any], rule: str) -> str:
    """A rule's measured share of stored weight levels one step changes, all layers."""
    block = (summary.get("update_sparsity") or {}).get(rule) or {}
    fraction = (block.get("all_layers") or {}).get("changed_fraction")
    if not block.get("measured") or not fraction:
        return "not measured"
    text = f"{100 * fraction['mean']:.2f}%"
    return text + (f" ± {100 * fraction['std']:.2f}" if len(summary["seeds"]) > 1 else "")


def _lifetime(wear: dict[str, Any] | None) -> str:
    """Training runs until a rule's most-written cell reaches its endurance."""
    first = (wear or {}).get("first_failure")
    if not first or first.get("runs") is None:
        # a chip with non-volatile cells where this rule rewrites none (B written once)
        return "no cell rewritten" if wear else "—"
    runs = first["runs"]
    text = f"{runs:,.0f}" if runs < 1e7 else f"{runs:.3g}"
    return f"{text} ({first['tensor']} {first['layer']})"


def _cim_table(summary: dict[str, Any], command: str) -> str:
    """Per chip and rule: accuracy, energy and latency per step and against BP, the measured
    update sparsity and the lifetime (compute-in-memory chips)."""
    seeds = len(summary["seeds"])
    header = ["chip", "rule", "test acc", "energy / step", "latency / step", "energy ÷ BP"]
    header += ["latency ÷ BP", "levels changed / step", "runs until a cell wears out"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for chip in summary["chip_order"]:
        for rule in summary["rule_order"]:
            r = summary["chips"][chip]["rules"][rule]
            ratios = r.get("ratios_to_bp") or {}
            cells = [
                f"`{chip}`",
                rule,
                _accuracy(r["test_accuracy"], seeds),
                format_si(r["energy_pj"]["total"] * 1e-12, "J"),
                format_si(r["latency_s"], "s"),
                f"{ratios.get('energy_per_step', 1.0):.3f}",
                f"{ratios.get('latency_per_step', 1.0):.3f}",
                _changed(summary, rule),
                _lifetime(r.get("wear")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", _environment(summary, command)])


def compare_cim(summary: dict[str, Any]) -> str:
    """The default experiment on the compute-in-memory chips (README, "Compute-in-memory")."""
    command = (
        "hwsim compare --chip rram_cim --chip rram_cim_mirror --chip pcm_hybrid --algo "
        "bp,fa,ifa --out reports/compare-cim --force"
    )
    return _cim_table(summary, command)


def compare_online(summary: dict[str, Any]) -> str:
    """Online learning (batch 1) on the online learner and the compute-in-memory chips."""
    return _cim_table(summary, "hwsim compare --experiment configs/experiments/online.yaml --force")


def reproduction(document: dict[str, Any]) -> str:
    """Every claim row of ``hwsim reproduce`` with our numbers and its verdict."""
    from hwsim.render.reproduction import row_numbers

    lines = ["| # | claim (paper) | measurement | ours (mean ± std over seeds) | verdict |"]
    lines.append("|---|---|---|---|---|")
    for row in document["claims"]:
        cells = [row["claim_id"], row["claim"], row["measurement"], row_numbers(row)]
        cells.append(row["verdict"])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    plan, timing = document["plan"], document.get("timing") or {}
    seeds = ", ".join(map(str, plan["seeds"]))
    env = document.get("environment") or {}
    where = ", ".join(
        f"{k} {env[k]}" for k in ("hwsim", "torch", "device", "cpu") if env.get(k) is not None
    )
    minutes = timing.get("wall_s", 0) / 60
    lines += [
        "",
        f"Measured with `hwsim reproduce --scale {plan['scale']}`, seeds {seeds}, "
        f"{timing.get('torch_threads', '?')} torch thread(s) per run on "
        f"{timing.get('cpu_count', '?')} cores, {minutes:.1f} min wall"
        + (f"; {where}" if where else "")
        + ".",
    ]
    return "\n".join(lines)


def compare_rules_seeds(summary: dict[str, Any]) -> str:
    """Every rule's accuracy per seed and its final alignment (docs/learning.md)."""
    chip = summary["chip_order"][0]
    lines = ["| rule | test accuracy | per seed | mean alignment |", "|---|---|---|---|"]
    for rule in summary["rule_order"]:
        block = summary["chips"][chip]["rules"][rule]
        acc = block["test_accuracy"]
        per_seed = ", ".join(f"{a:.3f}" for a in acc["per_seed_final"])
        angle = _angle(block)
        lines.append(f"| {rule} | {_accuracy(acc, len(summary['seeds']))} | {per_seed} | {angle} |")
    command = "hwsim compare --experiment configs/experiments/rules.yaml --force"
    return "\n".join([*lines, "", _environment(summary, command)])


def compare_rules_prng(summary: dict[str, Any]) -> str:
    """On each PRNG chip of the survey: the DRAM accesses per step with the feedback regenerated
    against stored in DRAM, per rule (``prng_against_stored``)."""
    lines = ["| chip | rule | DRAM accesses / step, stored | regenerated | change |"]
    lines.append("|---|---|---|---|---|")
    for entry in summary["chip_survey"]:
        for saving in entry.get("prng_against_stored", []):
            lines.append(
                f"| `{entry['chip']}` | {saving['rule']} | {saving['stored_accesses']:,} | "
                f"{saving['prng_accesses']:,} | {100 * saving['reduction']:+.2f}% |"
            )
    return "\n".join(lines)


def reproduction_verdicts(document: dict[str, Any]) -> str:
    """One line per claim of the paper: how many of its measurements agree, and how many not."""
    claims: dict[str, tuple[str, dict[str, int]]] = {}
    for row in document["claims"]:
        _, counts = claims.setdefault(row["claim_id"], (row["claim"], {}))
        verdict = row["verdict"].split(" (")[0]
        counts[verdict] = counts.get(verdict, 0) + 1
    order = ("agrees", "does not agree", "inconclusive")
    lines = ["| # | claim (paper) | " + " | ".join(order) + " |", "|---|---|---|---|---|"]
    for claim_id, (claim, counts) in claims.items():
        cells = [str(counts.get(v, 0) or "") for v in order]
        lines.append(f"| {claim_id} | {claim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Each saved run's name → what draws its table.
TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "compare-default": compare_default,
    "compare-survey": compare_survey,
    "compare-gap": compare_gap,
    "compare-rules": compare_rules,
    "compare-rules-seeds": compare_rules_seeds,
    "compare-rules-prng": compare_rules_prng,
    "compare-cim": compare_cim,
    "compare-online": compare_online,
    "reproduce-small": reproduction,
    "reproduce-small-verdicts": reproduction_verdicts,
}


#: Tables drawn from another table's saved run.
SOURCES = {
    "compare-survey": "compare-default",
    "compare-gap": "compare-default",
    "reproduce-small-verdicts": "reproduce-small",
    "compare-rules-seeds": "compare-rules",
    "compare-rules-prng": "compare-rules",
}


def load(name: str) -> dict[str, Any]:
    """The saved run behind table NAME (``docs/results/NAME.json``, or the run it shares)."""
    path = RESULTS / f"{SOURCES.get(name, name)}.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no saved run; save one with --store {SOURCES.get(name, name)}")
    return json.loads(path.read_text())


def redraw(text: str) -> str:
    """``text`` with every results block drawn again from its saved run."""

    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown results block {name!r}: expected one of {sorted(TABLES)}")
        return f"{match[1]}{TABLES[name](load(name))}\n{match[4]}"

    return MARKER.sub(block, text)


def stale() -> dict[str, str]:
    """Each document whose tables differ from its saved runs → the unified diff."""
    diffs = {}
    for relative in DOCUMENTS:
        path = ROOT / relative
        text = path.read_text()
        drawn = redraw(text)
        if drawn != text:
            lines = difflib.unified_diff(
                text.splitlines(True), drawn.splitlines(True), relative, f"{relative} (drawn)"
            )
            diffs[relative] = "".join(lines)
    return diffs


def store(name: str, source: Path) -> None:
    """Save a run's ``summary.json`` (or ``reproduction.json``, claims and plan only) as NAME."""
    document = json.loads(source.read_text())
    if document.get("format") == "hwsim-reproduction" or "claims" in document:
        keep = ("format", "version", "plan", "verdict_rule", "claims", "timing", "environment")
        document = {k: document[k] for k in keep if k in document}
    else:  # a comparison: everything but the access counts and per-layer splits (the run
        # keeps those)
        document.pop("rules", None)  # the same blocks as chips/<chip>/rules
        for chip in document.get("chips", {}).values():
            for block in chip.get("rules", {}).values():
                for key in ("counts", "counts_by_layer", "energy_by_layer_pj"):
                    block.pop(key, None)
    text = json.dumps(document, indent=1) + "\n"
    # Paths into the checkout it ran from are saved relative to it: nothing of this machine.
    text = text.replace(json.dumps(f"{ROOT}/")[1:-1], "")
    write_atomic(RESULTS / f"{name}.json", text)


def main() -> int:
    """Check (default), redraw (``--write``) or save a run (``--store``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="redraw the tables in place")
    parser.add_argument("--store", nargs=2, metavar=("NAME", "FILE"), help="save a run as NAME")
    args = parser.parse_args()
    if args.store:
        name, source = args.store
        if name not in TABLES or name in SOURCES:
            parser.error(f"NAME {name!r}: expected one of {', '.join(TABLES)}")
        store(name, Path(source))
        args.write = True
    if args.write:
        for relative in DOCUMENTS:
            path = ROOT / relative
            text = path.read_text()
            if redraw(text) != text:
                write_atomic(path, redraw(text))
                print(f"redrew {relative}")
        return 0
    diffs = stale()
    for diff in diffs.values():
        sys.stdout.write(diff)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
