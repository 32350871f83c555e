"""Wear and lifetime in a compare run, on a compute-in-memory chip: the trained runs of the
shared report run, a known ``update_sparsity`` written into their ``workload.json`` (as the
training side records it), then ``hwsim report RUN --chip wear_cim.yaml --add-chip edge_sram``
re-prices them. Everything is checked against ground truth: the simulator called on the same
workload and chip, the injected numbers computed by hand, the chip's endurance."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.workload import load_workload
from hwsim.experiments.compare import CSV_COLUMNS, WEAR_COLUMNS
from hwsim.render.compare_run import load_run
from hwsim.render.conclusion import conclusion
from hwsim.render.wear import count_text
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip

CIM_CHIP = Path(__file__).parents[1] / "compare" / "data" / "wear_cim.yaml"
ENDURANCE = 1e6  # wear_cim.yaml's endurance_cycles, both cim levels
RULES = ("bp", "fa", "ifa")


#: Which seeds of each rule keep the update sparsity their training measured: both, none (as a
#: run trained before hwsim measured it), only the first.
MEASURED = {"bp": (0, 1), "fa": (), "ifa": (0,)}


@pytest.fixture(scope="module")
def wear_run(compare_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    run = tmp_path_factory.mktemp("wear") / "run"
    shutil.copytree(compare_run, run, ignore=shutil.ignore_patterns("checkpoint.pt"))
    summary = json.loads((run / "summary.json").read_text())
    seeds = summary["seeds"]
    for rule in RULES:
        run_dirs = summary["chips"][summary["chip_order"][0]]["rules"][rule]["run_dirs"]
        for index, run_dir in enumerate(run_dirs):
            path = run / run_dir / "workload.json"
            workload = json.loads(path.read_text())
            assert workload["update_sparsity"]["layers"]  # training measured it
            if seeds[index] not in MEASURED[rule]:
                del workload["update_sparsity"]
                path.write_text(json.dumps(workload))
    result = CliRunner().invoke(
        main, ["report", str(run), "--chip", str(CIM_CHIP), "--add-chip", "edge_sram"]
    )
    assert result.exit_code == 0, result.output
    return run


def _summary(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "summary.json").read_text()))


def _first_workload(run: Path, summary: dict[str, Any], rule: str) -> Path:
    first = summary["chips"][summary["chip_order"][0]]["rules"][rule]["run_dirs"][0]
    return run / first / "workload.json"


def test_summary_wear_is_the_simulators_on_the_same_workload_and_chip(wear_run: Path) -> None:
    summary = _summary(wear_run)
    assert summary["chip_order"] == ["wear_cim", "edge_sram"]
    for chip in summary["chip_order"]:
        loaded = load_chip(wear_run / "chips" / f"{chip}.yaml")
        for rule in RULES:
            workload = load_workload(_first_workload(wear_run, summary, rule))
            expected = simulate(workload, loaded, [rule]).rules[rule].wear
            block = summary["chips"][chip]["rules"][rule]
            want = None if expected is None else json.loads(json.dumps(expected.to_dict()))
            assert block["wear"] == want, (chip, rule)
            # beside energy and latency, as the brief of summary.json says
            assert {"energy_pj", "latency_s", "wear"} <= set(block)
    assert summary["chips"]["edge_sram"]["rules"]["bp"]["wear"] is None
    cim = summary["chips"]["wear_cim"]["rules"]
    for rule in RULES:  # the weights live in the rram arrays: they wear
        tensors = {t["tensor"]: t for t in cim[rule]["wear"]["tensors"]}
        assert tensors["weights"]["level"] == "fwd"
        assert tensors["weights"]["endurance_cycles"] == ENDURANCE


def _hand_layer(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """What the summary should say of one layer, from the injected numbers."""
    runs = [
        sum(f * n for f, n in zip(s["changed_fraction"], s["steps"], strict=True)) / sum(s["steps"])
        for s in per_seed
    ]
    epochs = list(zip(*(s["changed_fraction"] for s in per_seed), strict=True))
    return {
        "mean": statistics.fmean(runs),
        "std": statistics.stdev(runs) if len(runs) > 1 else None,
        "per_seed": runs,
        "per_epoch": [statistics.fmean(e) for e in epochs],
        "per_epoch_std": [statistics.stdev(e) if len(e) > 1 else None for e in epochs],
        "most": max(s["max_changes_per_weight"] for s in per_seed),
        "rates": [s["max_changes_per_weight"] / sum(s["steps"]) for s in per_seed],
    }


def test_update_sparsity_is_the_hand_computation_from_the_runs(wear_run: Path) -> None:
    summary = _summary(wear_run)
    seeds = summary["seeds"]
    blocks = summary["update_sparsity"]
    assert list(blocks) == list(RULES)
    for rule in RULES:
        block = blocks[rule]
        run_dirs = summary["chips"]["wear_cim"]["rules"][rule]["run_dirs"]
        assert block["simulated_seed"] == seeds[0]
        assert block["simulated_run"] == run_dirs[0]
        assert block["seeds"] == list(MEASURED[rule])
        assert block["seeds_without"] == [s for s in seeds if s not in MEASURED[rule]]
        assert block["simulated_measured"] == (seeds[0] in MEASURED[rule])
        if not MEASURED[rule]:  # absent: null, and said so
            assert block["measured"] is False and block["layers"] is None
            assert "every update programs every cell" in block["note"]
            continue
        assert block["measured"] is True
        raw = [
            json.loads((wear_run / d / "workload.json").read_text())["update_sparsity"]
            for d, s in zip(run_dirs, seeds, strict=True)
            if s in MEASURED[rule]
        ]
        for layer, entry in block["layers"].items():
            hand = _hand_layer([r["layers"][layer] for r in raw])
            stats = entry["changed_fraction"]
            assert stats["mean"] == pytest.approx(hand["mean"], rel=1e-12)
            assert stats["per_seed"] == pytest.approx(hand["per_seed"], rel=1e-12)
            if hand["std"] is None:
                assert stats["std"] is None  # one seed: no spread measured, never 0
            else:
                assert stats["std"] == pytest.approx(hand["std"], rel=1e-12)
            per_epoch = entry["changed_fraction_per_epoch"]
            assert per_epoch["mean"] == pytest.approx(hand["per_epoch"], rel=1e-12)
            assert per_epoch["std"] == [
                None if s is None else pytest.approx(s, rel=1e-12) for s in hand["per_epoch_std"]
            ]
            assert entry["max_changes_per_weight"]["max"] == hand["most"]
            assert entry["max_change_rate"]["per_seed"] == pytest.approx(hand["rates"])
        # every layer together, weighted by the weight counts: seed by seed by hand
        weights = {n: v["weights"] for n, v in raw[0]["layers"].items()}
        whole = [
            sum(
                weights[n] * f * s
                for n, v in r["layers"].items()
                for f, s in zip(v["changed_fraction"], v["steps"], strict=True)
            )
            / sum(weights[n] * sum(v["steps"]) for n, v in r["layers"].items())
            for r in raw
        ]
        assert block["all_layers"]["changed_fraction"]["per_seed"] == pytest.approx(whole)


def test_accesses_csv_carries_the_wear_on_non_volatile_write_rows(wear_run: Path) -> None:
    summary = _summary(wear_run)
    with open(wear_run / "accesses.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert header == list(CSV_COLUMNS)
    # the columns that were there keep their positions; the wear columns follow `layer`
    assert header[:11] == [
        "chip",
        "rule",
        "level",
        "tensor",
        "phase",
        "direction",
        "bits",
        "words",
        "accesses",
        "energy_pj",
        "layer",
    ]
    assert header[11:] == list(WEAR_COLUMNS)
    filled = 0
    for row in rows:
        wear = summary["chips"][row["chip"]]["rules"][row["rule"]]["wear"]
        tensors = {(t["level"], t["tensor"]): t for t in (wear or {}).get("tensors", [])}
        t = tensors.get((row["level"], row["tensor"]))
        if t is None or row["direction"] != "write" or row["phase"] == "init":
            assert all(row[c] == "" for c in WEAR_COLUMNS), row
            continue
        filled += 1
        assert float(row["writes_per_cell_per_step"]) == t["mean_writes_per_cell_per_step"]
        assert float(row["max_writes_per_cell_per_step"]) == t["max_writes_per_cell_per_step"]
        assert row["most_written_layer"] == t["max_layer"]
        assert row["wear_measured"] == ("true" if t["measured"] else "false")
        assert float(row["endurance_cycles"]) == ENDURANCE
        assert float(row["steps_to_endurance"]) == t["steps_to_endurance"]
        assert float(row["runs_to_endurance"]) == t["runs_to_endurance"]
    assert filled >= len(RULES)  # every rule updates its weights in the rram arrays
    assert not any(r[c] for r in rows if r["chip"] == "edge_sram" for c in WEAR_COLUMNS)


def _expected_lifetime(run: Path, summary: dict[str, Any], rule: str) -> tuple[float, float]:
    """Steps and training runs until the most-written weight cell wears out, from the chip's
    endurance and the simulated workload alone: the most-changed weight's changes ÷ the run's
    measured steps per update where the workload has a measurement, else one write per
    update."""
    raw = json.loads(_first_workload(run, summary, rule).read_text())
    per_update = 1.0
    if "update_sparsity" in raw:
        per_update = max(
            layer["max_changes_per_weight"] / sum(layer["steps"])
            for layer in raw["update_sparsity"]["layers"].values()
        )
    steps = ENDURANCE / per_update
    return steps, steps / (raw["steps_per_epoch"] * raw["epochs"])


def test_conclusion_says_when_each_rules_most_written_cell_wears_out(wear_run: Path) -> None:
    summary = _summary(wear_run)
    data = load_run(wear_run)
    sentence = conclusion(summary, data.chip_kinds)[-1]
    assert sentence.startswith("On wear_cim, bp's")
    for rule in RULES:
        steps, runs = _expected_lifetime(wear_run, summary, rule)
        first = summary["chips"]["wear_cim"]["rules"][rule]["wear"]["first_failure"]
        assert first["steps"] == pytest.approx(steps) and first["runs"] == pytest.approx(runs)
        assert f"{count_text(runs)} training runs ({count_text(steps)} steps)" in sentence
    bound = [r for r in RULES if not summary["chips"]["wear_cim"]["rules"][r]["wear"]["measured"]]
    assert "fa" in bound  # no seed of fa measured anything
    assert "upper bound" in sentence
    report = (wear_run / "report.md").read_text()
    assert sentence in report.split("\n\n")[1]  # in the conclusion box, under the title


def test_report_has_a_wear_section_with_tables_and_a_figure(wear_run: Path) -> None:
    summary = _summary(wear_run)
    report = (wear_run / "report.md").read_text()
    section = report.split("## Wear and lifetime\n", 1)[1].split("\n## ", 1)[0]
    assert "### Measured update sparsity" in section
    assert "### Wear on chip wear_cim" in section
    assert "Wear on chip edge_sram" not in section  # no non-volatile level there
    assert "![Measured update sparsity per epoch and lifetime" in section
    assert "(figures/wear.png)" in section
    # what was measured and which seed's workload was simulated, rule by rule
    seed0 = summary["seeds"][0]
    for rule in RULES:
        run = summary["update_sparsity"][rule]["simulated_run"]
        assert f"the wear, priced on seed {seed0}'s workload (`{run}`)" in section or (
            f"the chips priced seed {seed0}'s workload (`{run}`)" in section
        )
    assert "fa: not measured" in section
    assert f"ifa: measured on seed {seed0} at batch 100 (not on {summary['seeds'][1]})" in section
    # the wear table: one row per rule and stored non-volatile tensor, numbers from the summary
    rows = [line for line in section.splitlines() if line.startswith("| bp | weights")]
    t = next(
        t
        for t in summary["chips"]["wear_cim"]["rules"]["bp"]["wear"]["tensors"]
        if t["tensor"] == "weights"
    )
    assert rows and f"| {count_text(t['runs_to_endurance'])} |" in rows[0]
    assert "(first to fail)" in rows[0]
    # the update-sparsity table: bp's fc1 run mean as a percentage, the one-seed ifa without ±
    bp_fc1 = summary["update_sparsity"]["bp"]["layers"]["fc1"]["changed_fraction"]
    line = next(ln for ln in section.splitlines() if ln.startswith("| bp | fc1 |"))
    assert f"{100 * bp_fc1['mean']:.1f} % ± " in line
    line = next(ln for ln in section.splitlines() if ln.startswith("| ifa | fc1 |"))
    assert "±" not in line
    png = (wear_run / "figures" / "wear.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    html = (wear_run / "report.html").read_text()
    assert "<h2>Wear and lifetime</h2>" in html and html.count("data:image/png;base64,") >= 2


def test_no_wear_section_on_chips_without_non_volatile_levels(compare_run: Path) -> None:
    summary = _summary(compare_run)
    for chip in summary["chip_order"]:
        assert all(b["wear"] is None for b in summary["chips"][chip]["rules"].values())
    assert "Wear and lifetime" not in (compare_run / "report.md").read_text()
    assert not (compare_run / "figures" / "wear.png").exists()
    data = load_run(compare_run)
    assert not any("endurance" in s for s in conclusion(summary, data.chip_kinds))


def test_a_malformed_measurement_is_one_error_naming_the_file_and_key(
    wear_run: Path, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(wear_run, run)
    summary = _summary(run)
    path = _first_workload(run, summary, "bp")
    workload = json.loads(path.read_text())
    workload["update_sparsity"]["layers"]["fc1"]["steps"] = [2]  # one epoch of two
    path.write_text(json.dumps(workload))
    result = CliRunner().invoke(main, ["report", str(run), "--chip", str(CIM_CHIP)])
    assert result.exit_code == 2, result.output
    # the workload reader or compare's own check, whichever reads it first: one line
    message = result.output.replace("\n", "")
    assert message.startswith(f"error: {path}: update_sparsity.layers.fc1.")
    assert "steps" in message
