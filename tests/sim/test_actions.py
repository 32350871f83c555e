"""Action counts (``hwsim simulate --actions``, :mod:`hwsim.sim.actions`): hand-derived rows on
the toy chip, the sums docs/simulator.md ("Action counts") promises on the shipped chips, the
CSV and JSON files, and the compare pipeline's rows."""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.sim import simulate
from hwsim.sim.actions import COLUMNS, ActionRow, rule_actions, simulation_actions
from hwsim.sim.chip import load_chip
from hwsim.sim.model_specs import build_workload

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).parent / "data" / "toy_chip.yaml"
#: The columns as docs/simulator.md lists them.
DOCUMENTED = [
    *("chip", "rule", "batch_size", "scope", "layer", "phase", "component", "tensor"),
    *("action", "count", "bits", "energy_pj"),
]
INTEGER_COLUMNS = ("batch_size", "count", "bits")


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _read_csv(path: Path) -> tuple[list[str], list[ActionRow]]:
    """The header and the rows of an actions CSV, with the documented types."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = []
        for values in reader:
            row: dict[str, Any] = dict(zip(header, values, strict=True))
            for column in INTEGER_COLUMNS:
                row[column] = int(row[column])
            row["energy_pj"] = float(row["energy_pj"])
            rows.append(ActionRow(**row))
    return header, rows


def _toy_rows(tmp_path: Path, *extra: str, name: str = "actions.csv") -> list[ActionRow]:
    path = tmp_path / name
    result = _run(
        "simulate",
        "--chip",
        str(TOY),
        "--model",
        "mlp:4-3-2",
        "--batch-size",
        "3",
        "--actions",
        str(path),
        *extra,
    )
    assert result.exit_code == 0, result.output
    header, rows = _read_csv(path)
    assert header == DOCUMENTED
    return rows


def _one(rows: list[ActionRow], **match: Any) -> ActionRow:
    found = [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


# ------------------------------------------------------------------------ hand-derived rows


def test_toy_rows_by_hand(tmp_path: Path) -> None:
    """MLP 4-3-2 with biases, batch 3, int8 everything, FA on the toy chip
    (tests/sim/data/toy_chip.yaml: 2 samples per weight fetch, so fetch groups of 2 + 1)."""
    rows = _toy_rows(tmp_path, "--algo", "fa")
    step = [r for r in rows if r.scope == "step"]
    assert {(r.chip, r.rule, r.batch_size) for r in rows} == {("toy", "fa", 3)}
    # forward MACs = batch × in × out on the forward unit, 0.25 pJ each (int8)
    fc1 = _one(step, layer="fc1", phase="forward", component="compute.forward")
    fc2 = _one(step, layer="fc2", phase="forward", component="compute.forward")
    assert (fc1.action, fc1.count, fc1.bits, fc1.energy_pj) == ("mac_int8", 3 * 4 * 3, 0, 9.0)
    assert (fc2.count, fc2.energy_pj) == (3 * 3 * 2, 4.5)
    # errors go down from fc2 only (layer 0 sends none), on the error unit
    error = [r for r in step if r.component == "compute.error"]
    assert [(r.layer, r.count) for r in error] == [("fc2", 3 * 3 * 2)]
    # W read per fetch group: fc1's 15 int8 weights (bias included) = 120 bits = 8 words of 16
    # bits, twice (2 groups): 16 accesses at 2 pJ; fc2's 8 weights = 4 words, twice
    w1 = _one(step, layer="fc1", phase="forward", component="wmem", tensor="weights")
    w2 = _one(step, layer="fc2", phase="forward", component="wmem", tensor="weights")
    assert (w1.action, w1.count, w1.bits, w1.energy_pj) == ("read", 16, 240, 32.0)
    assert (w2.count, w2.bits, w2.energy_pj) == (8, 128, 16.0)
    # B of fc2 (6 weights × 8 bits, no bias: 3 words) read per fetch group
    b = _one(step, phase="backward", component="fbmem", tensor="feedback_weights")
    assert (b.layer, b.action, b.count, b.bits, b.energy_pj) == ("fc2", "read", 6, 96, 12.0)
    # FA's init writes B of fc2 once: 3 words at 3 pJ; the init is not split by layer
    init = _one(rows, scope="init", action="write")
    assert (init.layer, init.phase, init.component, init.count, init.energy_pj) == (
        "",
        "init",
        "fbmem",
        3,
        9.0,
    )
    # leakage: one row per level, count = the step's cycles; wmem leaks 1 mW at 1 MHz = 1000 pJ
    # per cycle, the other levels nothing
    cycles = simulate(build_workload("mlp:4-3-2", batch_size=3), TOY, "fa").rules["fa"]
    leak = [r for r in step if r.action == "leakage"]
    assert [r.component for r in leak] == ["rf", "wmem", "fbmem", "rom", "buf", "dram"]
    assert {r.count for r in leak} == {cycles.step.latency_cycles}
    assert {r.component: r.energy_pj for r in leak if r.energy_pj} == {
        "wmem": 1000.0 * cycles.step.latency_cycles
    }
    assert all((r.layer, r.phase, r.tensor, r.bits) == ("", "", "", 0) for r in leak)


def test_toy_transport_and_interconnect_rows(tmp_path: Path) -> None:
    """BP in transport mode: fc2's W (6 weights × 8 bits, no bias) read per fetch group for the
    error phase (direction ``transport``, read energy) and carried over the interconnect."""
    rows = _toy_rows(tmp_path, "--algo", "bp", "--set", "training.bp_weight_access=transport")
    t = _one(rows, scope="step", action="transport")
    assert (t.layer, t.phase, t.component, t.tensor) == ("fc2", "backward", "wmem", "weights")
    assert (t.count, t.bits, t.energy_pj) == (6, 96, 12.0)
    link = _one(rows, scope="step", component="interconnect")
    assert (link.layer, link.tensor, link.action) == ("fc2", "weights", "transfer")
    assert (link.count, link.bits, link.energy_pj) == (96, 96, 96 * 0.5)


# ----------------------------------------------------------- the sums, on the shipped chips

SHIPPED = [
    ("split_cores", "bp,fa,ifa,kp"),
    ("df_lnpu", "bp,fa,dfa,brsf"),
    ("dfa_prng", "fa,dfa,frsf"),
    ("rram_cim", "bp,fa,ifa,dfa"),
    ("pcm_hybrid", "bp,ifa,dfa"),
    ("online_edge", "bp,ifa,usf,kp"),
    ("edge_sram", "bp,ifa:30,brsf"),
]


def _workload() -> dict[str, Any]:
    """A small MLP whose epoch ends on a partial batch: two batch sizes to price."""
    doc = build_workload("mlp:24-16-8-4", batch_size=8)
    doc.update(epochs=2, batches=[{"batch_size": 8, "count": 3}, {"batch_size": 5, "count": 1}])
    return doc


def _fsum(rows: list[ActionRow]) -> float:
    return math.fsum(r.energy_pj for r in rows)


def _merged(rows: list[ActionRow]) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    """(phase, component, tensor, action) → (count, bits) summed over layers."""
    out: dict[tuple[str, str, str, str], tuple[int, int]] = defaultdict(lambda: (0, 0))
    for r in rows:
        count, bits = out[(r.phase, r.component, r.tensor, r.action)]
        out[(r.phase, r.component, r.tensor, r.action)] = (count + r.count, bits + r.bits)
    return dict(out)


@pytest.mark.parametrize(("chip_name", "rules"), SHIPPED, ids=[c for c, _ in SHIPPED])
def test_rows_add_up_to_what_hwsim_prices(chip_name: str, rules: str) -> None:
    chip = load_chip(chip_name)
    result = simulate(_workload(), chip, rules)
    rows = simulation_actions(result, chip)
    assert [r.rule for r in rows] == sorted((r.rule for r in rows), key=list(result.rules).index)
    for spec, r in result.rules.items():
        mine = [row for row in rows if row.rule == spec]
        assert mine == rule_actions(r, chip)
        assert list(r.steps_by_batch_size) == [8, 5]
        run_pj = 0.0
        for size, step in r.steps_by_batch_size.items():
            rows_of = [x for x in mine if x.scope == "step" and x.batch_size == size]
            dynamic = [x for x in rows_of if x.action != "leakage"]
            leakage = [x for x in rows_of if x.action == "leakage"]
            energy = step.energy
            # the sum-equality: the rows are the step's dynamic energy, and leakage apart
            assert _fsum(dynamic) == pytest.approx(
                energy.total_pj - energy.breakdown_pj["leakage"], rel=1e-12
            )
            assert _fsum(leakage) == pytest.approx(energy.breakdown_pj["leakage"], rel=1e-12)
            assert [x.component for x in leakage] == [m.name for m in chip.memories]
            assert {x.count for x in leakage} == {step.latency_cycles}
            # per layer: every row belongs to one layer, and they add up exactly to the step's
            # aggregated counts (its rows without the split)
            assert {x.layer for x in dynamic} == set(step.counts_by_layer)
            whole = [x for x in rule_actions(r, chip, by_layer=False) if x.batch_size == size]
            whole = [x for x in whole if x.scope == "step" and x.action != "leakage"]
            assert {x.layer for x in whole} == {""}
            assert _merged(dynamic) == _merged(whole)
            assert _fsum(dynamic) == pytest.approx(_fsum(whole), rel=1e-12)
            _check_against_counts(whole, step.counts)
            run_pj += _fsum(rows_of) * dict(_workload_batches())[size]
        init = [x for x in mine if x.scope == "init"]
        assert {x.layer for x in init} <= {""}
        assert {x.batch_size for x in init} <= {8}
        assert _fsum(init) == pytest.approx(r.init.energy.total_pj, rel=1e-12, abs=1e-9)
        # the run's totals: each batch size's steps × their count × epochs, plus the init once
        assert r.run_totals is not None
        expected = run_pj * 2 + _fsum(init)
        assert expected == pytest.approx(r.run_totals.energy.total_pj, rel=1e-12)


def _workload_batches() -> list[tuple[int, int]]:
    return [(b["batch_size"], b["count"]) for b in _workload()["batches"]]


def _check_against_counts(rows: list[ActionRow], counts: Any) -> None:
    """Aggregated rows are exactly the step's :class:`Counts`, entry by entry."""
    memory = {
        (r.component, r.tensor, r.phase, r.action): (r.bits, r.count)
        for r in rows
        if r.action
        in ("read", "write", "transport", "feed", "drain", "mvm", "mvm_transposed", "convert")
    }
    assert memory == {k: (c.bits, c.accesses) for k, c in counts.accesses.items()}
    macs = {
        (r.phase, r.action.removeprefix("mac_")): r.count for r in rows if r.action[:4] == "mac_"
    }
    assert macs == counts.macs
    link = {(r.tensor, r.phase): r.count for r in rows if r.action == "transfer"}
    assert link == counts.interconnect_bits
    assert all(r.count == r.bits for r in rows if r.action == "transfer")
    generated = {r.phase: r.count for r in rows if r.action == "generate"}
    assert generated == counts.generated_values


def test_cim_rows_are_activations_and_free_products() -> None:
    """On rram_cim, BP reads W transposed in its arrays: activations and extra conversions are
    the level's rows, priced per activation; the products themselves cost nothing apart."""
    chip = load_chip("rram_cim")
    result = simulate(build_workload("mlp:24-16-8", batch_size=8), chip, "bp,fa")
    bp = rule_actions(result.rules["bp"], chip)
    actions = {(r.component, r.action) for r in bp if r.scope == "step"}
    level = chip.memory("w_cim")
    assert {("w_cim", "mvm"), ("w_cim", "mvm_transposed"), ("w_cim", "convert")} <= actions
    for r in bp:
        if r.component == "w_cim" and r.action in ("mvm", "mvm_transposed", "convert"):
            assert r.energy_pj == r.count * level.access_energy_pj(r.action)
    products = [r for r in bp if r.component == "compute.cim"]
    assert products and all(r.action == "mac_cim" and r.energy_pj == 0 for r in products)
    assert {r.phase for r in products} == {"forward", "backward"}
    fa = rule_actions(result.rules["fa"], chip)
    assert any(r.component == "b_cim" and r.action == "mvm" for r in fa)


# ---------------------------------------------------------------------------- the files


def test_csv_and_json_hold_the_same_rows(tmp_path: Path) -> None:
    from_csv = _toy_rows(tmp_path, "--algo", "bp,fa", name="a.csv")
    path = tmp_path / "sub" / "a.json"  # a missing folder is created
    result = _run(
        "simulate",
        *("--chip", str(TOY), "--model", "mlp:4-3-2", "--batch-size", "3", "--algo", "bp,fa"),
        *("--actions", str(path), "--json"),
    )
    assert result.exit_code == 0, result.output
    json.loads(result.output)  # --json's stdout stays one JSON document
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == ("hwsim-actions", 1)
    assert document["columns"] == DOCUMENTED == list(COLUMNS)
    from_json = [ActionRow(*values) for values in document["rows"]]
    assert from_json == from_csv
    assert all(type(r.count) is int and type(r.energy_pj) is float for r in from_json)
    assert from_json[0].rule == "bp" and {r.rule for r in from_json} == {"bp", "fa"}
    assert not list(tmp_path.rglob("*.tmp"))  # written through a temporary file, renamed


def test_rows_match_the_api(tmp_path: Path) -> None:
    rows = _toy_rows(tmp_path, "--algo", "ifa")
    chip = load_chip(TOY)
    expected = simulation_actions(
        simulate(build_workload("mlp:4-3-2", batch_size=3), chip, "ifa"), chip
    )
    assert rows == expected  # floats written as repr: they read back exactly


@pytest.mark.parametrize("name", ["actions.txt", "actions", "actions.csv.gz"])
def test_an_unknown_ending_is_bad_input(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    result = _run("simulate", "--model", "mlp:4-3-2", "--actions", str(path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"--actions {path}" in result.output
    assert ".csv" in result.output and ".json" in result.output
    assert not path.exists()


def test_upper_case_endings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "A.JSON"
    result = _run("simulate", "--model", "mlp:4-3-2", "--algo", "fa", "--actions", str(path))
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text())["format"] == "hwsim-actions"
    assert f"action counts of every rule → {path}" in " ".join(result.output.split())


# ------------------------------------------------------------------- compare and the docs


def test_compare_prices_the_same_rows(tmp_path: Path) -> None:
    """``hwsim compare`` writes ``actions.csv`` from each chip's cached pricing: the rows there
    are the API's, one list of values per row."""
    from hwsim.experiments.compare import price_chip

    doc = build_workload("mlp:8-6-4", batch_size=4)
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(doc))
    chip = load_chip("rram_cim")
    priced = price_chip(chip, {"bp": path, "usf": path, "fa": path})
    assert set(priced["unsupported"]) == {"usf"}  # the arrays do not run uSF: no rows
    rows = [ActionRow(*values) for values in json.loads(json.dumps(priced["actions"]))]
    result = simulate(doc, chip, "bp,fa")
    assert rows == simulation_actions(result, chip)


def test_the_documented_example_rows_are_real(tmp_path: Path, monkeypatch: Any) -> None:
    """docs/simulator.md's example: its command, run, writes every row the doc shows."""
    text = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    section = text.split("## Action counts", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```bash\nhwsim (simulate [^\n]+)\n```", section)
    shown = re.search(r"```text\n(chip,rule,[^`]+)```", section)
    assert command and shown
    monkeypatch.chdir(tmp_path)
    result = _run(*command[1].split())
    assert result.exit_code == 0, result.output
    lines = shown[1].splitlines()
    written = (tmp_path / "actions.csv").read_text().splitlines()
    assert lines[0] == written[0] == ",".join(DOCUMENTED)
    missing = [line for line in lines[1:] if line not in written]
    assert not missing, missing
