"""The MAC array (``compute.<unit>.array``): cycles and operand traffic derived by hand.

The toy chip (tests/sim/data/toy_chip.yaml: an 8-bit-word register file at 1 pJ per access,
every class pinned, batch_outer in groups of 2 samples) gets a 2 × 2 array per unit with
16-bit accumulators. The workload is the MLP 4-3-2, int8 throughout, batch 3: groups of 2 and
1 samples, each fetching the whole of a layer's W (3 × 4 and its bias of 3, for layer 0).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hwsim.core.errors import InputError
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import MacArray, load_chip
from hwsim.sim.counting import count_step, count_step_by_layer
from hwsim.sim.lowering import lower_step
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.spatial import Product, cycles, operands, utilization

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")
ARRAY = MacArray(rows=2, cols=2, accumulator_bits=16)
CHIP = dataclasses.replace(TOY, arrays=dict.fromkeys(("forward", "error", "update"), ARRAY))
WORK = workload_from_dict(build_workload("mlp:4-3-2", batch_size=3))


def test_weight_stationary_counts_by_hand():
    # forward of layer 0 for 2 samples: 3 outputs across 2 columns (2 blocks), 4 inputs down 2
    # rows (2 blocks); one cycle per sample and block pair
    p = Product(out=3, red=4, positions=2)
    ws = "weight_stationary"
    assert cycles(ARRAY, "forward", p, ws) == 2 * 2 * 2
    assert utilization(ARRAY, p.macs, cycles(ARRAY, "forward", p, ws)) == pytest.approx(
        24 / (8 * 4)
    )
    ops = operands(ARRAY, "forward", p, ws, first=True)
    assert ops.weight_passes == 1  # each weight loaded once
    assert ops.row_reads == 2 * 4 * 2  # each input once per block of output columns
    assert ops.col_reads == 0
    assert ops.sum_writes == 2 * 3 * 2  # each output's sum once per block of the reduction
    assert ops.sum_reads == 2 * 3 * 1  # and read back for the second block


def test_output_stationary_forward_by_hand():
    # the same product with the 2 samples down the rows (1 block) and the 3 outputs across
    # the columns (2 blocks), one cycle per reduced value: 1 · 2 · 4 = 8 cycles
    p = Product(out=3, red=4, positions=2)
    os_ = "output_stationary"
    assert cycles(ARRAY, "forward", p, os_) == 8
    ops = operands(ARRAY, "forward", p, os_, first=True)
    assert ops.weight_passes == 1  # each weight broadcast down the column, 1 block of samples
    assert ops.row_reads == 2 * 4 * 2  # each input broadcast along its row, per column block
    assert (ops.sum_writes, ops.sum_reads) == (2 * 3, 0)  # each output drained once
    # 5 samples: 3 blocks of rows, so every weight is read 3 times
    assert operands(ARRAY, "forward", Product(3, 4, 5), os_, first=True).weight_passes == 3


def test_output_stationary_gradient_by_hand():
    # ΔW of 3 × 4 over 2 samples: 3 rows over 2 array rows, 4 columns over 2 array columns
    p = Product(out=3, red=4, positions=2)
    os_ = "output_stationary"
    assert cycles(ARRAY, "gradient", p, os_) == 2 * 2 * 2
    first, later = (operands(ARRAY, "gradient", p, os_, first=f) for f in (True, False))
    assert first.row_reads == 2 * 3 * 2  # errors, once per block of columns
    assert first.col_reads == 2 * 4 * 2  # inputs, once per block of rows
    assert (first.sum_writes, first.sum_reads) == (12, 0)
    assert (later.sum_writes, later.sum_reads) == (12, 12)  # ΔW read back first


def test_the_toy_steps_operand_traffic_and_cycles():
    plan = make_plan(WORK, CHIP, parse_rule("bp"), 3)
    layer0 = count_step_by_layer(WORK, CHIP, plan)[1][WORK.layers[0].name]
    rf = {(t, p, d): c for (lv, t, p, d), c in layer0.accesses.items() if lv == "rf"}
    # forward, per fetch of n samples (n = 2, then 1); the rf's words are 8 bits, so an 8-bit
    # value is one access (1 pJ) and a 16-bit sum two. Weight-stationary: W and its bias 15,
    # inputs 8n, sums written 6n values (12n words) and read 3n (6n words): 15 + 26n.
    # Output-stationary: W 15 (n ≤ 2 samples fill one block of rows), inputs 8n, each of the
    # 3n outputs drained once (6n words): 15 + 14n. The fetch takes the cheaper.
    assert rf[("weights", "forward", "feed")].accesses == 15 + 15
    assert rf[("activations", "forward", "feed")].accesses == 8 * 2 + 8 * 1
    assert rf[("partial_sums", "forward", "drain")].bits == 3 * 3 * 16
    assert ("partial_sums", "forward", "feed") not in rf
    # gradient: errors 6n, inputs 8n; ΔW (12 values, 8 bits) written by both fetches, read
    # back by the second (group 0 starts it)
    assert rf[("errors", "gradient", "feed")].bits == 6 * 3 * 8
    assert rf[("activations", "gradient", "feed")].bits == 8 * 3 * 8
    assert rf[("gradients", "gradient", "drain")].bits == 2 * 12 * 8
    assert rf[("gradients", "gradient", "feed")].bits == 12 * 8
    # the array's cycles of layer 0, against ⌈12n / 4⌉ = 3n of ideal lanes: forward output-
    # stationary, ⌈n/2⌉ · ⌈3/2⌉ · 4 = 8 per fetch; gradient ⌈3/2⌉ · ⌈4/2⌉ · n = 4n
    tasks = [t for piece in lower_step(WORK, CHIP, plan).pieces for t in piece]
    for phase, want in (("forward", 8 + 8), ("gradient", 4 * 3)):
        mine = [t for t in tasks if t.phase == phase and t.layer == 0]
        assert sum(t.compute_cycles for t in mine) == want
        assert sum(t.macs for t in mine) == 12 * 3


def test_operands_are_priced_and_simulated_like_any_access():
    # the simulation's tallies must equal the closed form (simulate checks it), and the step
    # costs exactly the operand accesses more than on the same chip without arrays, at 1 pJ
    with_array = simulate(WORK, CHIP, "bp").rules["bp"]
    without = simulate(WORK, TOY, "bp").rules["bp"]
    operand_pj = sum(
        c.accesses
        for (_, _, _, d), c in count_step(
            WORK, CHIP, make_plan(WORK, CHIP, parse_rule("bp"), 3)
        ).accesses.items()
        if d in ("feed", "drain")
    )
    assert operand_pj > 0
    dyn = with_array.step.energy.total_pj - with_array.step.energy.breakdown_pj["leakage"]
    dyn0 = without.step.energy.total_pj - without.step.energy.breakdown_pj["leakage"]
    assert dyn - dyn0 == pytest.approx(operand_pj)
    # the array wastes elements on 3 outputs over 2 columns: the step takes longer
    assert with_array.step.latency_cycles > without.step.latency_cycles


def test_an_array_that_is_not_its_units_lanes_is_an_error(tmp_path):
    text = (DATA / "toy_chip.yaml").read_text()
    bad = text.replace(
        "forward: {macs_per_cycle: 4}",
        "forward: {macs_per_cycle: 4, array: {rows: 4, cols: 2, accumulator_bits: 16}}",
    )
    path = tmp_path / "chip.yaml"
    path.write_text(bad)
    with pytest.raises(InputError, match=r"compute\.forward\.array.*4 × 2 = 8.*macs_per_cycle"):
        load_chip(path)


def test_simulate_says_how_busy_each_array_was(tmp_path):
    # the toy's layer 0 forward: 36 MACs in 16 array cycles of 4 elements (56%); layer 1
    # (3 → 2, 2 × 3 weights) output-stationary: ⌈n/2⌉ · ⌈2/2⌉ · 3 = 3 cycles per fetch, 6 in
    # all for 18 MACs (75%): 54 MACs in 22 cycles, 88 element-cycles, 61%
    from click.testing import CliRunner

    from hwsim.cli import main

    chip = yaml_with_arrays(tmp_path)
    out = CliRunner().invoke(
        main,
        ["simulate", "--model", "mlp:4-3-2", "--batch-size", "3", "--chip", str(chip)],
    )
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("bp: MAC arrays:"))
    assert "forward 2×2 61% busy (output-stationary 4 fetches)" in line


def yaml_with_arrays(folder: Path) -> Path:
    """The toy chip file with a 2 × 2 array of 16-bit accumulators on every unit."""
    text = (DATA / "toy_chip.yaml").read_text()
    for unit in ("forward", "error", "update"):
        text = text.replace(
            f"{unit}: {{macs_per_cycle: 4}}",
            f"{unit}: {{macs_per_cycle: 4, array: {{rows: 2, cols: 2, accumulator_bits: 16}}}}",
        )
    path = folder / "toy_arrays.yaml"
    path.write_text(text)
    return path
