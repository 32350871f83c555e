"""``hwsim simulate`` / ``hwsim chip`` through click, the JSON document, and torch-freedom."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR, DEFAULT_CHIP
from hwsim.sim import simulate
from hwsim.sim.model_specs import build_workload

TOY = Path(__file__).parent / "data" / "toy_chip.yaml"


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_simulate_json_document():
    result = _run(
        "simulate",
        "--algo",
        "bp,fa,ifa:30",
        "--chip",
        str(TOY),
        "--model",
        "mlp:4-3-2",
        "--batch-size",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["format"] == "hwsim-simulation" and doc["chip"]["name"] == "toy"
    assert list(doc["rules"]) == ["bp", "fa", "ifa:30"]
    bp, fa = doc["rules"]["bp"], doc["rules"]["fa"]
    # toy: mirror mode; layer 1's 6 weights × 8 bits re-synchronized (layer 0 has no mirror)
    assert bp["sync_write_bits"] == 48 and bp["weight_transport_bits"] == 0
    assert fa["feedback_read_bits"] == 96 and fa["sync_write_bits"] == 0
    assert fa["counts"]["fbmem"]["feedback_weights"]["backward"]["read"] == {
        "bits": 96,
        "words": 6,
        "accesses": 6,
        "energy_pj": 12.0,
    }
    assert fa["macs"] == 172
    # wiring: the JSON carries the API's numbers (their derivation: tests/sim/test_sim_counts.py)
    energy = fa["energy_pj"]
    assert (
        energy["total"]
        == simulate(build_workload("mlp:4-3-2", batch_size=3), TOY, "fa")
        .rules["fa"]
        .step.energy.total_pj
    )
    assert fa["latency_s"] == fa["latency_cycles"] / 1e6
    assert fa["run_totals"] is None  # a model spec has no epochs


def test_simulate_workload_file_with_run_totals(tmp_path):
    doc = build_workload("mlp:4-3-2", batch_size=3)
    doc.update(epochs=2, batches=[{"batch_size": 3, "count": 2}, {"batch_size": 2, "count": 1}])
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(doc))
    result = _run("simulate", "--algo", "fa", "--chip", str(TOY), "--workload", str(path), "--json")
    assert result.exit_code == 0, result.output
    totals = json.loads(result.output)["rules"]["fa"]["run_totals"]
    assert totals["steps"] == 6 and totals["epochs"] == 2
    # 2 epochs of two batches of 3 and one of 2, plus FA's init (B written once)
    result = simulate(doc, TOY, "fa").rules["fa"]
    full, last = result.steps_by_batch_size[3], result.steps_by_batch_size[2]
    expected = 2 * (2 * full.energy.total_pj + last.energy.total_pj) + result.init.energy.total_pj
    assert totals["energy_pj"]["total"] == pytest.approx(expected)


def test_simulate_table_and_default_chip():
    result = _run("simulate", "--model", "mlp:784-256-10")
    assert result.exit_code == 0, result.output
    assert "edge_sram" in result.output and "bp" in result.output


def test_bad_options_exit_2():
    for args in (
        ("simulate", "--model", "mlp:4-x"),
        ("simulate", "--algo", "sgd", "--model", "mlp:4-3-2"),
        ("simulate",),
        ("simulate", "--model", "resnet18", "--workload", "w.json"),
        ("simulate", "--workload", "missing.json"),
    ):
        result = _run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


def test_chip_show_and_validate():
    shown = _run("chip", "show", str(DEFAULT_CHIP))
    assert shown.exit_code == 0 and "weight_sram" in shown.output
    files = sorted(map(str, CHIPS_DIR.glob("*.yaml")))
    ok = _run("chip", "validate", *files)
    assert ok.exit_code == 0 and ok.output.count("ok ") == len(files) >= 4
    by_name = _run("chip", "show", "dram_prng")  # a shipped chip by its bare name
    assert by_name.exit_code == 0 and "prng" in by_name.output
    split = _run("chip", "show", "split_cores")
    assert "BP weight access mirror (synchronized via dram)" in split.output
    assert "loop order auto" in split.output and "update accumulate" in split.output


def test_chip_show_says_when_a_mirror_syncs_only_what_changed(tmp_path):
    path = tmp_path / "sparse.yaml"
    path.write_text("extends: split_cores\nname: sparse\ntraining: {mirror_sync: changed}\n")
    shown = _run("chip", "show", str(path))
    assert shown.exit_code == 0, shown.output
    assert (
        "BP weight access mirror (synchronized via dram, only the changed weights "
        "synchronized)" in " ".join(shown.output.split())
    )


def test_chip_training_options_are_validated(tmp_path):
    text = (
        TOY.read_text()
        .replace("training:\n", "training:\n  update: sometimes\n  mirror_sync_via: attic\n", 1)
        .replace("loop_order: batch_outer", "loop_order: sideways")
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = _run("chip", "validate", str(bad))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "training.update: must be one of accumulate, fused, got 'sometimes'" in result.output
    assert "training.loop_order: must be one of auto, batch_outer, weight_outer" in result.output
    assert "training.mirror_sync_via: names no memory level" in result.output


def test_resnet18_workload_shapes():
    from hwsim.sim.model_specs import build_workload

    layers = build_workload("resnet18")["layers"]
    assert len(layers) == 21  # stem, 16 block convs, 3 shortcuts, classifier
    weights = sum(
        math.prod(la["weight_shape"]) + (la["weight_shape"][0] if la["bias"] else 0)
        for la in layers
    )
    # the CIFAR ResNet-18 has 11,173,962 parameters; 9,600 of them are batch norm's
    assert weights == 11_173_962 - 9_600
    assert layers[-1]["input_shape"] == [512]


def test_simulator_core_does_not_import_torch():
    code = "import sys, hwsim.sim.api, hwsim.cli.simulate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_simulate_model_options_and_stated_assumptions():
    """mlp:4-3-2 has 12 + 3 + 6 + 2 = 23 parameters; the toy chip keeps 8-bit optimizer state.
    Per step the update reads and writes every state tensor once: 23 × 8 = 184 bits per tensor."""

    def state_traffic(*options: str) -> dict:
        result = _run(
            "simulate",
            "--chip",
            str(TOY),
            "--model",
            "mlp:4-3-2",
            "--algo",
            "fa",
            "--batch-size",
            "3",
            "--json",
            *options,
        )
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        counts = doc["rules"]["fa"]["counts"]["buf"].get("optimizer_state", {})
        return {d: c["bits"] for d, c in counts.get("update", {}).items()}, doc["workload"]

    assert state_traffic("--optimizer", "sgd")[0] == {}
    assert state_traffic()[0] == {"read": 184, "write": 184}  # momentum by default
    traffic, workload = state_traffic("--optimizer", "adam", "--error-bits", "32")
    assert traffic == {"read": 368, "write": 368}  # m and v
    assert workload["optimizer_state_per_weight"] == 2 and workload["error_bits"] == [32]
    assert workload["error_format"] == ["fp32"]  # 32-bit errors alone: float32, as training
    table = _run("simulate", "--chip", str(TOY), "--model", "mlp:4-3-2", "--weight-bits", "4")
    assert table.exit_code == 0, table.output
    assert "workload: mlp:4-3-2, input 4, batch 64, int4 weights, int8 activations" in table.output
    assert "optimizer momentum (1 state tensor per weight)" in table.output
    adam = _run("simulate", "--chip", str(TOY), "--model", "mlp:4-3-2", "--optimizer", "adam")
    assert "optimizer adam (2 state tensors per weight)" in adam.output


def test_model_options_need_a_model(tmp_path):
    doc = build_workload("mlp:4-3-2", batch_size=3)
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(doc))
    result = _run("simulate", "--chip", str(TOY), "--workload", str(path), "--optimizer", "adam")
    assert result.exit_code == 2
    assert "--optimizer: only with --model" in result.output


def test_simulate_shows_where_tensors_went_and_why(tmp_path):
    """edge_sram with the default MLP under Adam (2 state tensors, 32-bit errors): the global
    buffer cannot hold every layer's ΔW and both state tensors, so some go to dram because it
    is full. ΔW is accumulated on chip over the whole batch, so it is written once and read
    once by the update: 2 accesses per bit, as for the state (read and written once). With
    SGD+momentum and 8-bit errors on the smaller MLP 784-256-256-10, the mapper moves W of
    some layers to act_sram, which has room and costs less per access (50.9 pJ per word
    against weight_sram's 106): the output says which tensor went where for which reason."""
    args = ["simulate", "--model", "mlp:784-256-256-256-256-256-10", "--optimizer", "adam"]
    args += ["--error-bits", "32", "--algo", "fa"]
    doc = json.loads(_run(*args, "--json").output)
    fa = doc["rules"]["fa"]
    spilled = {(s["tensor"], s["placed"], s["why"]) for s in fa["spills"]}
    assert ("gradients", "dram", "full") in spilled
    assert set(fa["accesses_per_bit"]["gradients"].values()) == {2.0}
    assert set(fa["accesses_per_bit"]["optimizer_state"].values()) == {2.0}
    table = _run(*args)
    assert "fa: placed away from their class's level" in table.output
    assert "gradients of layers" in table.output and "global_buffer full → dram" in table.output
    assert "fa: loop orders" in table.output and "fa: mapper (energy)" in table.output
    small = ["simulate", "--model", "mlp:784-256-256-10", "--algo", "fa"]
    doc = json.loads(_run(*small, "--json").output)
    cheaper = {
        (s["tensor"], s["placed"]) for s in doc["rules"]["fa"]["spills"] if s["why"] != "full"
    }
    assert ("weights", "act_sram") in cheaper
    assert ", cheaper than weight_sram" in _run(*small).output


def test_pinned_must_name_tensor_classes(tmp_path):
    pinned = next(line for line in TOY.read_text().splitlines() if line.startswith("  pinned:"))
    text = TOY.read_text().replace(pinned, "  pinned: [gradients, ducks]", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = _run("chip", "validate", str(bad))
    assert result.exit_code == 2
    assert "training.pinned" in result.output and "ducks" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("ducks", "optimizer_state"))
    assert _run("chip", "validate", str(good)).exit_code == 0


def test_an_energy_that_overflows_is_an_error_never_infinity_in_json(tmp_path):
    # 1e306 pJ per access is finite and passes validation; a step makes thousands of accesses,
    # and their sum overflows a float: the chip's numbers are absurd, so it is bad input
    text = TOY.read_text().replace("    read_energy_pj: 100\n", "    read_energy_pj: 1.0e+306\n", 1)
    # an rf that holds a sample of the 784-input model (the toy's holds the toy's)
    text = text.replace("    size_bytes: 64 ", "    size_bytes: 8192 ", 1)
    absurd = tmp_path / "absurd.yaml"
    absurd.write_text(text)
    result = _run("simulate", "--chip", str(absurd), "--model", "mlp:784-256-10", "--json")
    assert result.exit_code == 2, result.output
    assert "Infinity" not in result.output and "Traceback" not in result.output
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("memories:"))
    assert f"{absurd}:{line}: memories: the memory energy of one bp step (batch 64) overflows" in (
        result.output
    )


@pytest.mark.parametrize("name", sorted(p.stem for p in CHIPS_DIR.glob("*.yaml")))
def test_chip_show_at_80_columns_cuts_no_number(name, monkeypatch):
    """Every number of the chip's memories shows whole at 80 columns (a table holds as many
    memories as fit; the rest follow in another), nothing is cut with an ellipsis."""
    import re

    from hwsim.cli.common import console
    from hwsim.sim.chip import load_chip

    monkeypatch.setattr(console, "width", 80)
    shown = _run("chip", "show", name)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    tables = [line for line in lines if re.search(r"[│┃┏┗└┡]", line)]
    assert max(map(len, tables)) <= 80 and "…" not in shown.output  # (sources: soft-wrapped)
    cells = {cell.strip() for line in lines for cell in re.split(r"[│┃]", line)}
    for m in load_chip(name).memories:
        numbers = [
            f"{m.size_bytes:,}",
            str(m.word_bits),
            f"{m.read_energy_pj:g}",
            str(m.bandwidth_bits_per_cycle),
            str(m.latency_cycles),
            f"{m.leakage_mw:g}",
        ]
        if m.kind != "rom":
            numbers.append(f"{m.write_energy_pj:g}")
        for number in numbers:
            assert number in cells, (m.name, number)
