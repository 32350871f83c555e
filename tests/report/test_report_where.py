"""The report's conclusion, placement, energy-by-level, per-layer and cross-chip sections,
checked against the run's own files (simulation JSON, accesses.csv, chip YAML) through
``hwsim report``."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
import yaml
from click.testing import CliRunner

import hwsim.render.compare_figures as figures
from hwsim.cli import main
from hwsim.render.compare_run import load_run
from hwsim.render.conclusion import conclusion


def report(run: Path) -> str:
    result = CliRunner().invoke(main, ["report", str(run)], terminal_width=200)
    assert result.exit_code == 0, result.output
    return (run / "report.md").read_text()


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"{heading}\n\n", 1)[1].split("\n## ", 1)[0]


def table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    split = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return split[0], split[1:]


def test_the_conclusion_opens_the_report(run_copy: Path) -> None:
    markdown = report(run_copy)
    summary = json.loads((run_copy / "summary.json").read_text())
    title, first, *_ = markdown.split("\n\n")
    assert title.startswith("# ")
    kinds = load_run(run_copy).chip_kinds
    assert first == "**Conclusion.** " + " ".join(conclusion(summary, kinds))
    chip = summary["chip_order"][0]
    used = any(
        b["energy_pj"]["memory_by_level"].get("dram")
        for b in summary["chips"][chip]["rules"].values()
    )
    # the tiny network fits edge_sram's SRAMs: its DRAM is never touched, and the report says so
    assert used or f"On {chip}, no step energy goes to DRAM." in first
    # two seeds, two chips: spread stated, and the sentence about the chips is there
    assert "over 2 seeds" in first
    assert "Of the 2 chips" in first or "the same on all 2 chips" in first
    page = (run_copy / "report.html").read_text()
    assert page.index('<p class="conclusion">') < page.index("<ul>")


def test_placement_table_is_the_simulations_placement(compare_run: Path) -> None:
    markdown = (compare_run / "report.md").read_text()
    data = load_run(compare_run)
    for chip in data.chips:
        headers, rows = table(section(markdown, f"## Where each tensor lives, chip {chip}"))
        layers = [h.removeprefix("layer ") for h in headers[2:]]
        assert layers == [la.name for la in _workload_layers(compare_run)]
        seen = set()
        for tensor, who, *cells in rows:
            rules = data.rules if who == "all" else who.split(", ")
            for rule in rules:
                sim = json.loads((compare_run / "simulation" / chip / f"{rule}.json").read_text())
                spills = {(s["tensor"], s["layer"]): s for s in sim["spills"]}
                for layer, cell in zip(layers, cells, strict=True):
                    level, _, why = cell.partition(" (")
                    expected = sim["placement"][tensor].get(layer, "—")
                    assert level == expected, (chip, rule, tensor, layer)
                    spill = spills.get((tensor, layer))
                    if spill is not None and spill["why"] == "full":
                        assert why == f"{spill['preferred']} full)"
                    elif spill is not None:
                        assert why == f"cheaper than {spill['preferred']})"
                    else:
                        assert why == ""
                seen.add((rule, tensor))
        # every rule's every tensor is in exactly one row
        for rule in data.rules:
            sim = json.loads((compare_run / "simulation" / chip / f"{rule}.json").read_text())
            assert {t for r, t in seen if r == rule} == set(sim["placement"])


def _workload_layers(run: Path) -> list[Any]:
    from hwsim.core.workload import load_workload

    summary = json.loads((run / "summary.json").read_text())
    first = summary["chips"][summary["chip_order"][0]]["rules"][summary["rule_order"][0]]
    return list(load_workload(run / first["run_dirs"][0] / "workload.json").layers)


def _dram_pj_from_csv(run: Path, chip: str, rule: str) -> float:
    """DRAM energy of a step, priced by hand: accesses × the chip YAML's energy per access."""
    memories = yaml.safe_load((run / "chips" / f"{chip}.yaml").read_text())["memories"]
    total = 0.0
    with open(run / "accesses.csv") as f:
        for row in csv.DictReader(f):
            if row["chip"] != chip or row["rule"] != rule:
                continue
            spec = memories[row["level"]]
            if spec["kind"] != "dram":
                continue
            energy = spec["write_energy_pj" if row["direction"] == "write" else "read_energy_pj"]
            total += int(row["accesses"]) * energy
    return total


def test_dram_share_of_a_step_is_priced_from_the_chip_file(compare_run: Path) -> None:
    markdown = (compare_run / "report.md").read_text()
    summary = json.loads((compare_run / "summary.json").read_text())
    for chip in summary["chip_order"]:
        text = section(markdown, f"### Energy by memory level, chip {chip}")
        for rule in summary["rule_order"]:
            total = summary["chips"][chip]["rules"][rule]["energy_pj"]["total"]
            share = 100 * _dram_pj_from_csv(compare_run, chip, rule) / total
            assert re.search(rf"\b{rule} {share:.1f} % \(", text), (chip, rule, share)


def test_energy_by_level_table_adds_up_to_the_step(compare_run: Path) -> None:
    markdown = (compare_run / "report.md").read_text()
    summary = json.loads((compare_run / "summary.json").read_text())
    chip = summary["chip_order"][0]
    headers, rows = table(section(markdown, f"### Energy by memory level, chip {chip}"))
    assert headers[:2] == ["part", "kind"] and rows[-1][0] == "total"
    for column, rule in enumerate(summary["rule_order"], start=2):
        assert headers[column] == f"{rule}: energy / step (share)"
        shares = [float(r[column].split("(")[1].rstrip(" %)")) for r in rows[:-1]]
        assert sum(shares) == pytest.approx(100, abs=0.05 * len(shares))
    kinds = {r[0]: r[1] for r in rows}
    memories = yaml.safe_load((compare_run / "chips" / f"{chip}.yaml").read_text())["memories"]
    for level, kind in kinds.items():
        if level in memories:
            assert kind == memories[level]["kind"]


def test_accesses_csv_layers_add_up_to_the_counts(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    names = {la.name for la in _workload_layers(compare_run)}
    sums: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    with open(compare_run / "accesses.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert row["layer"] in names
        key = tuple(row[k] for k in ("chip", "rule", "level", "tensor", "phase", "direction"))
        for i, field in enumerate(("bits", "words", "accesses")):
            sums[key][i] += int(row[field])
    expected = {}
    for chip in summary["chip_order"]:
        for rule, block in summary["chips"][chip]["rules"].items():
            for level, tensors in block["counts"].items():
                for tensor, phases in tensors.items():
                    for phase, directions in phases.items():
                        for direction, c in directions.items():
                            key = (chip, rule, level, tensor, phase, direction)
                            expected[key] = [c["bits"], c["words"], c["accesses"]]
    assert dict(sums) == expected


def test_energy_per_layer_table(compare_run: Path) -> None:
    markdown = (compare_run / "report.md").read_text()
    summary = json.loads((compare_run / "summary.json").read_text())
    for chip in summary["chip_order"]:
        headers, rows = table(section(markdown, f"## Energy per layer, chip {chip}"))
        assert [r[0] for r in rows[:-1]] == [la.name for la in _workload_layers(compare_run)]
        assert rows[-1][0] == "leakage (not per layer)"
        for rule in summary["rule_order"]:
            block = summary["chips"][chip]["rules"][rule]
            column = headers.index(f"{rule}: energy / step (share)")
            shares = [float(r[column].split("(")[1].rstrip(" %)")) for r in rows]
            assert sum(shares) == pytest.approx(100, abs=0.05 * len(shares))
            layers = sum(e["total"] for e in block["energy_by_layer_pj"].values())
            leakage = block["energy_pj"]["breakdown"]["leakage"]
            assert layers + leakage == pytest.approx(block["energy_pj"]["total"], rel=1e-12)


def test_chips_side_by_side(compare_run: Path) -> None:
    markdown = (compare_run / "report.md").read_text()
    summary = json.loads((compare_run / "summary.json").read_text())
    text = section(markdown, "## The report's chips side by side")
    assert "![Energy and latency per step on each chip and rule](figures/chips.png)" in text
    headers, rows = table(text)
    assert [(r[0], r[1]) for r in rows] == [
        (rule, chip) for rule in summary["rule_order"] for chip in summary["chip_order"]
    ]
    for rule, chip, *cells in rows:
        cell = dict(zip(headers[2:], cells, strict=True))
        ratios = summary["chips"][chip]["rules"][rule]["ratios_to_bp"]
        assert float(cell["energy ÷ BP (×)"]) == pytest.approx(ratios["energy_per_step"], abs=5e-4)
        assert float(cell["latency ÷ BP (×)"]) == pytest.approx(
            ratios["latency_per_step"], abs=5e-4
        )


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Figures drawn from now on, kept open for inspection instead of rendered to PNG."""
    drawn: list[Any] = []

    def keep(fig: Any) -> bytes:
        drawn.append(fig)
        return b""

    monkeypatch.setattr(figures, "png_bytes", keep)
    return drawn


def test_energy_figures_share_the_axis_and_colour_memory_kinds_alike(
    compare_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_run(compare_run)
    drawn = _captured(monkeypatch)
    peak = figures.step_energy_peak_j(data)
    for chip in data.chips:
        figures.energy_figure(data, chip, peak)
    tops = []
    for fig, chip in zip(drawn, data.chips, strict=True):
        ax = fig.axes[0]
        tops.append(ax.get_ylim()[1] * (1e-6 if "(mJ)" in ax.get_ylabel() else 1.0))
        handles, labels = ax.get_legend_handles_labels()
        kinds = data.chip_kinds[chip]
        checked: set[str] = set()
        for handle, label in zip(handles, labels, strict=True):
            # "sram: weight_sram", or just "dram" where the level is named after its kind
            kind, _, level = label.rpartition(": ")
            if level in kinds:
                assert kind in (kinds[level], "") and (kind or level == kinds[level])
                checked.add(kinds[level])
                colour = handle.patches[0].get_facecolor()
                assert colour == pytest.approx(
                    matplotlib_rgba(figures.KIND_COLORS[kinds[level]])
                ), (chip, label)
        assert "sram" in checked, chip
        plt.close(fig)
    assert len(set(tops)) == 1  # one y-axis for every chip


def matplotlib_rgba(color: str) -> tuple[float, ...]:
    from matplotlib.colors import to_rgba

    return tuple(to_rgba(color))


def test_bp_zero_degree_line_is_inside_the_alignment_axes(
    compare_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_run(compare_run)
    drawn = _captured(monkeypatch)
    figures.alignment_figure(data)
    (fig,) = drawn
    bottom, top = fig.axes[0].get_ylim()
    plt.close(fig)
    assert bottom < 0 < top  # BP's 0° line is drawn above the axis, not on it


def test_one_seed_never_shows_a_zero_spread(run_copy: Path) -> None:
    summary = json.loads((run_copy / "summary.json").read_text())
    summary["seeds"] = summary["seeds"][:1]
    for chip in summary["chip_order"]:
        for block in summary["chips"][chip]["rules"].values():
            block["run_dirs"] = block["run_dirs"][:1]
            acc = block["test_accuracy"]
            acc["per_seed_final"] = acc["per_seed_final"][:1]
            acc["final"] = acc["per_seed_final"][0]
            acc["final_std"] = 0.0  # as a summary written before std became null for one seed
            acc["best_std"] = 0.0
    summary.pop("rules", None)
    (run_copy / "summary.json").write_text(json.dumps(summary))
    markdown = report(run_copy)
    page = (run_copy / "report.html").read_text()
    for text in (markdown, page):
        assert not re.search(r"±\s*0\.0+\b", text)
    assert "1 seed, so no spread was measured" in markdown.split("\n\n")[1]


def test_a_run_without_the_per_layer_split_still_reports(run_copy: Path) -> None:
    summary = json.loads((run_copy / "summary.json").read_text())
    for chip in summary["chip_order"]:
        for block in summary["chips"][chip]["rules"].values():
            block.pop("counts_by_layer")
            block.pop("energy_by_layer_pj")
    summary.pop("rules", None)
    (run_copy / "summary.json").write_text(json.dumps(summary))
    for path in (run_copy / "figures").glob("layers_*.png"):
        path.unlink()
    markdown = report(run_copy)
    assert "priced before hwsim recorded a step's counts per layer" in markdown
    assert not list((run_copy / "figures").glob("layers_*.png"))
    assert "## Where each tensor lives" in markdown  # placement comes from the simulation JSON
