"""The report's "Where BP's extra energy goes" and "Energy against the floor", checked against
the numbers of summary.json (which tests/sim/test_sim_explain.py derives by hand)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hwsim.core.units import format_si, format_sig
from hwsim.render.report import write_report
from hwsim.sim.chip import load_chip
from hwsim.sim.explain import CAUSE_LABELS, CAUSES

PREFIX_SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "m": 1e-3, "µ": 1e-6, "n": 1e-9, "p": 1e-12}


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table(text: str, index: int = 0) -> tuple[list[str], list[list[str]]]:
    """The ``index``-th Markdown table of ``text``: headers and body rows."""
    tables = [t for t in text.split("\n\n") if t.startswith("|")]
    lines = tables[index].splitlines()
    cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return cells[0], cells[2:]


def joules(cell: str) -> tuple[float, float]:
    """A signed ``+4.87 µJ`` as joules, and half a unit of its last digit (3 significant)."""
    number, unit = cell.split(" ")
    sign = -1.0 if number.startswith("−") else 1.0
    digits = number.lstrip("+−").replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    scale = PREFIX_SCALE[unit[:-1]]
    return sign * float(digits) * scale, 0.5 * 10.0**-decimals * scale


def test_gap_table_matches_summary(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    markdown = (compare_run / "report.md").read_text()
    checked = 0
    for chip in summary["chip_order"]:
        rules = summary["chips"][chip]["rules"]
        assert "gap_to_bp" not in rules["bp"]
        headers, rows = table(section(markdown, f"Where BP's extra energy goes, chip {chip}"))
        assert headers[:2] == ["rule", "BP − rule / step"]
        assert headers[-2:] == ["leading cause", "init, one-time (BP − rule)"]
        assert [r[0] for r in rows] == [r for r in summary["rule_order"] if r != "bp"]
        for row in rows:
            cell = dict(zip(headers, row, strict=True))
            energy = rules[row[0]]["gap_to_bp"]["energy_pj"]
            value, tol = joules(cell["BP − rule / step"])
            assert abs(value - energy["difference"] * 1e-12) <= tol * (1 + 1e-9)
            for cause in CAUSES:
                header = f"{CAUSE_LABELS[cause]} (share)"
                truth = energy["causes"][cause]
                if header not in cell:  # a column is left out only when it is 0 for every rule
                    assert abs(truth) <= 1e-9 * energy["bp"]
                    continue
                amount, share = cell[header].split(" (")
                value, tol = joules(amount)
                if abs(truth) > 1e-9 * energy["bp"]:
                    assert abs(value - truth * 1e-12) <= tol * (1 + 1e-9)
                    expected = f"{100 * truth / energy['difference']:+.1f} %".replace("-", "−")
                    assert share == expected + ")"
                else:
                    assert amount == "0 J"
                checked += 1
            lead = energy["leading_cause"]
            assert cell["leading cause"].startswith(CAUSE_LABELS[lead] + " (")
            value, tol = joules(cell["init, one-time (BP − rule)"])
            assert abs(value - energy["init_difference"] * 1e-12) <= tol * (1 + 1e-9)
    assert checked > 0


def test_gap_ground_truth_on_the_report_chips(compare_run: Path) -> None:
    """On edge_sram (transport) the gap is exactly the wire: FA reads an equally large B from
    equally priced SRAM; on dfa_prng (mirror, PRNG) it is the mirror's sync and reads."""
    summary = json.loads((compare_run / "summary.json").read_text())
    chip = load_chip(compare_run / "chips" / "edge_sram.yaml")
    w, b = (chip.memory(chip.placement[t]) for t in ("weights", "feedback_weights"))
    # the premise: W and B live in equally priced, equally wide memories
    assert (w.read_energy_pj, w.word_bits, w.burst_words) == (
        b.read_energy_pj,
        b.word_bits,
        b.burst_words,
    )
    for spec in ("fa", "ifa"):
        edge = summary["chips"]["edge_sram"]["rules"][spec]["gap_to_bp"]["energy_pj"]
        bp = summary["chips"]["edge_sram"]["rules"]["bp"]
        wire = bp["energy_pj"]["breakdown"]["interconnect"]
        assert edge["causes"]["transport_wire"] == pytest.approx(wire)
        # the gap is the wire (plus the leakage of any latency difference), nothing else
        assert edge["difference"] == pytest.approx(wire + edge["causes"]["leakage"], rel=1e-9)
        assert edge["causes"]["transport_reads"] == pytest.approx(-edge["causes"]["feedback_reads"])
        leak = edge["causes"]["leakage"]
        assert edge["leading_cause"] == ("transport_wire" if abs(wire) >= abs(leak) else "leakage")
        dfa = summary["chips"]["dfa_prng"]["rules"][spec]["gap_to_bp"]["energy_pj"]
        assert dfa["causes"]["transport_wire"] == 0 and dfa["causes"]["mirror_sync"] > 0
        assert sum(dfa["causes"].values()) == pytest.approx(dfa["difference"], rel=1e-9)


def test_findings_name_the_computed_leading_cause(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    findings = section((compare_run / "report.md").read_text(), "Findings")
    assert "dominated" not in findings
    for chip in summary["chip_order"]:
        for spec in ("fa", "ifa"):
            energy = summary["chips"][chip]["rules"][spec]["gap_to_bp"]["energy_pj"]
            text = f"Chip {chip}: BP − {spec} = "
            assert text in findings
            line = findings.split(text, 1)[1].split("\n", 1)[0]
            assert f"leading cause: {CAUSE_LABELS[energy['leading_cause']]} (" in line


def test_floor_table_matches_summary(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    markdown = (compare_run / "report.md").read_text()
    headers, rows = table(section(markdown, "Energy against the floor"))
    assert len(rows) == len(summary["chip_order"]) * len(summary["rule_order"])
    for row in rows:
        cell = dict(zip(headers, row, strict=True))
        block = summary["chips"][cell["chip"]]["rules"][cell["rule"]]
        assert cell["floor / step"] == format_si(block["floor_pj"]["total"] * 1e-12, "J")
        assert block["energy_over_floor"] >= 1.0
        assert float(cell["energy ÷ floor (×)"]) == pytest.approx(
            block["energy_over_floor"], abs=5e-4
        )
        assert block["energy_over_floor"] == pytest.approx(
            block["energy_pj"]["total"] / block["floor_pj"]["total"]
        )


def test_gap_figure_per_chip_is_linked(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    markdown = (compare_run / "report.md").read_text()
    for chip in ("edge_sram", "dfa_prng"):
        assert (compare_run / "figures" / f"gap_{chip}.png").is_file()
        text = section(markdown, f"Where BP's extra energy goes, chip {chip}")
        assert f"](figures/gap_{chip}.png)" in text
        # the latency table follows, with the warning that phases overlap
        assert "Phases overlap" in text
        headers, rows = table(text, 1)
        assert headers[-1] == "error-unit stalls (cycles)" and len(rows) == 2
        for row in rows:
            latency = summary["chips"][chip]["rules"][row[0]]["gap_to_bp"]["latency_cycles"]
            cells = [latency["difference"], *latency["by_phase"].values()]
            cells.append(latency["error_stall_difference"])
            expected = [f"{v:+,}".replace("-", "−") if v else "0" for v in cells]
            assert row[1:] == expected


def test_an_older_run_without_the_new_fields_still_renders(run_copy: Path) -> None:
    """A summary written before the gap and the floor existed: the report leaves them out."""
    path = run_copy / "summary.json"
    summary = json.loads(path.read_text())
    for chip in summary["chips"].values():
        for block in chip["rules"].values():
            for key in ("gap_to_bp", "floor_pj", "energy_over_floor"):
                block.pop(key, None)
    summary.pop("rules", None)
    path.write_text(json.dumps(summary))
    shutil.rmtree(run_copy / "figures")
    write_report(run_copy)
    markdown = (run_copy / "report.md").read_text()
    assert "## Where BP's extra energy goes" not in markdown
    assert "## Energy against the floor" not in markdown
    assert not (run_copy / "figures" / "gap_edge_sram.png").exists()


def test_survey_table_and_loop_orders_match_the_run(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    markdown = (compare_run / "report.md").read_text()
    headers, rows = table(section(markdown, "The same workloads on every shipped chip"))
    assert [r[0] for r in rows] == [e["chip"] for e in summary["chip_survey"]]
    for row, entry in zip(rows, summary["chip_survey"], strict=True):
        cell = dict(zip(headers, row, strict=True))
        assert cell["in this report"] == ("yes" if entry["in_report"] else "no")
        for spec in ("fa", "ifa"):
            ratio = entry["rules"][spec]["energy_vs_bp"]
            assert float(cell[f"{spec} energy ÷ bp (×)"]) == pytest.approx(ratio, abs=5e-4)
        # the chip's silicon, as the chip file and its models give it (3 significant digits)
        area = load_chip(entry["chip"]).area_mm2
        assert entry["area_mm2"] == pytest.approx(area)
        assert float(cell["area (mm²)"]) == pytest.approx(area, rel=5e-3)
    # dfa_prng keeps BP's mirror (on chip): the silicon of the level it lives in, in one line
    survey = {entry["chip"]: entry for entry in summary["chip_survey"]}
    mirror = survey["dfa_prng"]["rules"]["bp"]["own_silicon"]["weight_mirror"]
    ((level, bits),) = mirror["levels"].items()
    held = load_chip("dfa_prng").memory(level)
    assert mirror["area_mm2"] == held.area_mm2 > 0
    assert mirror["occupied_mm2"] == pytest.approx(bits / held.size_bits * held.area_mm2)
    row = next(r for r in rows if r[0] == "dfa_prng")
    column = headers.index("silicon of each rule's own tensors (mm²)")
    assert f"bp: mirror {format_sig(held.area_mm2)} ({level})" in row[column]
    assert "bp: " not in next(r for r in rows if r[0] == "edge_sram")[column]  # no mirror
    findings = section(markdown, "Findings")
    assert (
        f"On dfa_prng, bp's weight mirror lives in {level}: {format_sig(held.area_mm2)} mm² of "
        "the chip's" in findings
    )
    for chip in summary["chip_order"]:
        orders = json.loads((compare_run / "simulation" / chip / "bp.json").read_text())
        forward = [o["forward"].split(":")[0] for o in orders["loop_orders"].values()]
        counted = ", ".join(f"{n} ×{forward.count(n)}" for n in dict.fromkeys(forward))
        line = findings.split(f"Chip {chip}, loop orders chosen", 1)[1].split("\n", 1)[0]
        assert f"forward {counted};" in line
