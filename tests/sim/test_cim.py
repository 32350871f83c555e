"""Compute-in-memory chips, counted by hand from what the arrays must do.

The toy chip (tests/sim/data/toy_cim.yaml): two RRAM levels of 4 arrays, 8 rows × 8 columns,
4 bits per cell, so an 8-bit weight takes 2 cells. Prices: an activation costs the array
(10 pJ, 20 pJ transposed) plus one 1 pJ conversion per sensed line and one 0.5 pJ drive per
driven line: 10 + 8·1 + 8·0.5 = 22 pJ forward, 20 + 8·1 + 8·0.5 = 32 pJ transposed. A
transposed pass drives a weight's 2 cells (of different significance) one at a time, so each
pass also converts its 8 rows once more: 8 conversions of 1 pJ, 8 pJ (``convert``). A row read
out costs 3 pJ. A programmed cell takes 2 pulses, each 2 pJ plus a 1 pJ verify: 6 pJ. Inputs
are applied 8 bits at once (one slice per vector).

The network, mlp:6-4-4-3 with biases, maps W's inputs (+1 bias row) on rows and outputs × 2
cells on columns: fc1 7 × 8, fc2 5 × 8, fc3 5 × 6 cells, one array each. B and BP's mirror are
programmed pre-transposed: fc2 4 rows × 8 cells, fc3 3 rows × 8 cells, one array each.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hwsim.core.errors import InputError
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.lowering import lower_step
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload

TOY = Path(__file__).parent / "data" / "toy_cim.yaml"
MODEL = "mlp:6-4-4-3"
FORWARD_PJ, TRANSPOSED_PJ, ROW_PJ, CELL_PJ = 22.0, 32.0, 3.0, 6.0
#: a transposed pass's extra conversions: (2 cells − 1) × 8 rows, 1 pJ each
CONVERT_PJ = 8.0
#: cells of W per layer (weights and bias, 2 cells each) and of W without bias (layers ≥ 1)
W_CELLS = {"fc1": 28 * 2, "fc2": 20 * 2, "fc3": 15 * 2}
B_CELLS = {"fc2": 16 * 2, "fc3": 12 * 2}
#: rows read to read W out: with its bias row (the update), without (a copy, the error pass)
ROWS_WITH_BIAS = 7 + 5 + 5
ROWS_NO_BIAS = {"fc2": 4, "fc3": 4}


def workload(batch: int) -> dict:
    return build_workload(MODEL, batch_size=batch)


def accesses(result, rule: str, level: str, tensor: str, phase: str, direction: str) -> int:
    counts = result.rules[rule].step.counts.accesses
    found = counts.get((level, tensor, phase, direction))
    return 0 if found is None else found.accesses


def energy(result, rule: str, level: str, tensor: str, phase: str, direction: str) -> float:
    return result.rules[rule].step.energy.by_access_pj.get((level, tensor, phase, direction), 0.0)


@pytest.mark.parametrize("batch", [1, 2])
def test_products_in_the_arrays_count_one_activation_per_vector_per_array(batch):
    result = simulate(workload(batch), TOY, "bp,fa,ifa")
    for rule in ("bp", "fa", "ifa"):
        # every sample activates the 3 arrays of the forward pass once
        assert accesses(result, rule, "fwd", "weights", "forward", "mvm") == 3 * batch
        assert energy(result, rule, "fwd", "weights", "forward", "mvm") == 3 * batch * FORWARD_PJ
        # the arrays compute the products: no digital forward or backward MACs to price
        macs = result.rules[rule].step.counts.macs
        assert macs[("forward", "cim")] == batch * (6 * 4 + 4 * 4 + 4 * 3)
        assert not [k for k in macs if k[0] in ("forward", "backward") and k[1] != "cim"]
    # BP reads W's own arrays transposed for fc3 and fc2 (fc1 sends no error down); each pass
    # converts the 8 rows once more for the second cell of every weight
    assert accesses(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == 2 * batch
    assert energy(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == (
        2 * batch * TRANSPOSED_PJ
    )
    assert accesses(result, "bp", "fwd", "weights", "backward", "convert") == 2 * batch * 8
    assert energy(result, "bp", "fwd", "weights", "backward", "convert") == 2 * batch * CONVERT_PJ
    # FA and IFA activate B's arrays forward: same count, the cheaper activation
    for rule in ("fa", "ifa"):
        assert accesses(result, rule, "bwd", "feedback_weights", "backward", "mvm") == 2 * batch
        assert result.rules[rule].weight_transport_bits == 0
    assert result.rules["bp"].weight_transport_bits == 0  # nothing leaves the arrays


def test_update_reads_w_out_and_programs_every_cell_without_a_measurement():
    result = simulate(workload(2), TOY, "bp,fa")
    for rule in ("bp", "fa"):
        assert accesses(result, rule, "fwd", "weights", "update", "read") == ROWS_WITH_BIAS
        assert energy(result, rule, "fwd", "weights", "update", "read") == ROWS_WITH_BIAS * ROW_PJ
        cells = sum(W_CELLS.values())
        assert accesses(result, rule, "fwd", "weights", "update", "write") == cells
        assert energy(result, rule, "fwd", "weights", "update", "write") == cells * CELL_PJ
        wear = result.rules[rule].wear
        weights = next(t for t in wear.tensors if t.tensor == "weights")
        assert weights.cells == cells
        assert weights.mean_writes_per_cell_per_step == 1.0
        assert weights.max_writes_per_cell_per_step == 1.0 and not weights.measured
        assert weights.steps_to_endurance == 1e6  # endurance_cycles of the toy's arrays


def test_init_programs_b_once_and_ifa_reads_w0_out_first():
    result = simulate(workload(1), TOY, "bp,fa,ifa")
    init = {r: result.rules[r].init.counts.accesses for r in ("bp", "fa", "ifa")}
    assert init["bp"] == {}  # transposed reads: no copy of W anywhere
    b_cells = sum(B_CELLS.values())
    assert init["fa"][("bwd", "feedback_weights", "init", "write")].accesses == b_cells
    assert ("fwd", "weights", "init", "read") not in init["fa"]
    assert init["ifa"][("bwd", "feedback_weights", "init", "write")].accesses == b_cells
    assert init["ifa"][("fwd", "weights", "init", "read")].accesses == sum(ROWS_NO_BIAS.values())
    assert result.rules["ifa"].init.energy.total_pj == pytest.approx(
        b_cells * CELL_PJ + 8 * ROW_PJ + (16 + 12) * 8 * 0.1  # cells, rows, W₀'s bits on the link
    )
    # B is never programmed again: its cells do not wear
    fa_b = next(t for t in result.rules["fa"].wear.tensors if t.tensor == "feedback_weights")
    assert fa_b.writes_per_step == 0 and fa_b.steps_to_endurance is None


def test_init_latency_is_row_reads_then_link_then_programming_rounds():
    # IFA, layer by layer: read W₀'s rows (1 cycle each), carry its bits (32 bits/cycle + 1),
    # program 4 cells at a time, 2 pulses of 3 cycles per round.
    result = simulate(workload(1), TOY, "ifa")
    fc2 = 4 + (128 // 32 + 1) + (32 // 4) * 2 * 3
    fc3 = 4 + (96 // 32 + 1) + (24 // 4) * 2 * 3
    assert result.rules["ifa"].init.latency_cycles == fc2 + fc3


def mirror_chip(tmp_path: Path, **training: str) -> Path:
    text = TOY.read_text()
    text = text.replace("transpose_read: true, transpose_mvm_energy_pj: 20,", "")
    for key, value in training.items():
        text = text.replace(f"  {key}: ", f"  {key}: {value}  # ", 1)
    path = tmp_path / "mirror.yaml"
    path.write_text(text)
    return path


def test_mirror_reprograms_the_changed_cells_after_every_update(tmp_path):
    chip = mirror_chip(tmp_path, bp_weight_access="mirror")
    result = simulate(workload(2), chip, "bp,fa")
    # the error pass activates the mirror's arrays, like FA's B
    assert accesses(result, "bp", "bwd", "weight_mirror", "backward", "mvm") == 2 * 2
    # every update reprograms the mirror (unmeasured: every cell) and carries all of W
    cells = sum(B_CELLS.values())
    assert accesses(result, "bp", "bwd", "weight_mirror", "update", "write") == cells
    assert result.rules["bp"].step.counts.interconnect_bits[("weight_mirror", "update")] == (
        (16 + 12) * 8
    )
    gap = result.gaps_to_bp["fa"].energy
    assert gap.causes_pj["mirror_sync"] == pytest.approx(cells * CELL_PJ + (16 + 12) * 8 * 0.1)
    mirror = next(t for t in result.rules["bp"].wear.tensors if t.tensor == "weight_mirror")
    assert mirror.max_writes_per_cell_per_step == 1.0
    # the first copy: W read out (no bias rows), every mirror cell programmed
    init = result.rules["bp"].init.counts.accesses
    assert init[("fwd", "weights", "init", "read")].accesses == 8
    assert init[("bwd", "weight_mirror", "init", "write")].accesses == cells


def test_transport_reads_w_out_per_fetch_and_carries_it(tmp_path):
    chip = mirror_chip(tmp_path, bp_weight_access="transport")
    result = simulate(workload(2), chip, "bp")
    # samples_per_weight_fetch: 1 → W of fc2 and fc3 read out once per sample: 4 + 4 rows
    assert accesses(result, "bp", "fwd", "weights", "backward", "transport") == 2 * 8
    assert result.rules["bp"].weight_transport_bits == 2 * (16 + 12) * 8
    # carried to the digital error unit, which multiplies them there (int8 × int8 MACs)
    macs = result.rules["bp"].step.counts.macs
    assert macs[("backward", "int8")] == 2 * (16 + 12)


def test_transposed_against_mirror_against_transport(tmp_path):
    """The three ways BP reaches W differ by what the hardware must do, priced here by hand:
    one transposed activation per array per sample; one forward activation of a mirror per
    array per sample plus reprogramming it; W's rows read out and carried per sample."""
    batch = 2
    transpose = simulate(workload(batch), TOY, "bp").rules["bp"].step.energy
    mirror = simulate(workload(batch), mirror_chip(tmp_path, bp_weight_access="mirror"), "bp")
    transport = simulate(workload(batch), mirror_chip(tmp_path, bp_weight_access="transport"), "bp")
    t_back = transpose.by_phase_pj["backward"]
    m_back = mirror.rules["bp"].step.energy.by_phase_pj["backward"]
    # backward: 2 arrays × 2 samples, transposed (32 pJ and 8 extra conversions) against
    # forward on the mirror (22 pJ)
    transposed = TRANSPOSED_PJ + CONVERT_PJ
    assert t_back - m_back == pytest.approx(2 * batch * (transposed - FORWARD_PJ))
    # transport: no activation; 8 rows read and 224 bits carried per sample, 56 int8 MACs
    tr = transport.rules["bp"].step
    assert tr.counts.accesses[("fwd", "weights", "backward", "transport")].accesses == 8 * batch
    assert tr.energy.by_phase_pj["backward"] - t_back == pytest.approx(
        batch * (8 * ROW_PJ + 224 * 0.1 + 28 * 0.5) - 2 * batch * transposed
    )


def test_transpose_needs_arrays_that_read_transposed(tmp_path):
    text = TOY.read_text().replace("transpose_read: true, transpose_mvm_energy_pj: 20,", "")
    path = tmp_path / "no_transpose.yaml"
    path.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "bp_weight_access" in t)
    with pytest.raises(InputError) as info:
        load_chip(path)
    assert str(info.value) == (
        f"{path}:{line}: training.bp_weight_access: transpose needs "
        "memories.fwd.transpose_read: true (its arrays cannot be read transposed); use mirror "
        "or transport, or give the arrays row converters (transpose_read: true)"
    )


def test_cim_levels_hold_only_weight_like_tensors(tmp_path):
    text = TOY.read_text().replace("  activations: sram", "  activations: fwd")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"placement\.activations: 'fwd' is a cim level"):
        load_chip(path)


def test_a_cim_level_derives_its_size(tmp_path):
    text = TOY.read_text().replace(
        "kind: cim, technology: rram, arrays: 4,",
        "kind: cim, technology: rram, arrays: 4, size_bytes: 10,",
        1,
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"memories\.fwd\.size_bytes: a cim level derives it"):
        load_chip(path)
    chip = load_chip(TOY)
    assert chip.memory("fwd").size_bits == 4 * 8 * 8 * 4


def test_weights_that_do_not_fit_the_arrays_spill_to_digital_memory(tmp_path):
    # one array per level: fc1 takes it, fc2 and fc3 go to the SRAM and run on the MACs
    text = TOY.read_text().replace("arrays: 4,", "arrays: 1,")
    path = tmp_path / "small.yaml"
    path.write_text(text)
    result = simulate(workload(1), path, "bp")
    placement = result.rules["bp"].placement["weights"]
    assert placement == {"fc1": "fwd", "fc2": "sram", "fc3": "sram"} or set(placement.values()) == {
        "fwd",
        "sram",
    }
    on_arrays = [layer for layer, level in placement.items() if level == "fwd"]
    assert len(on_arrays) == 1
    # a spilled layer's W cannot be read transposed: BP carries it like transport
    assert result.rules["bp"].weight_transport_bits > 0


def test_rules_the_arrays_do_not_model_are_refused():
    with pytest.raises(InputError, match="rule 'kp' is not modelled on a chip with compute"):
        simulate(workload(1), TOY, "kp")


def test_inputs_are_applied_in_slices_of_dac_bits(tmp_path):
    # fp32 errors are applied at the arrays' 8 input bits: one 8-bit slice, as int8 errors
    doc = build_workload(MODEL, batch_size=1, error_bits=32, error_format="fp32")
    result = simulate(doc, TOY, "bp")
    assert accesses(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == 2
    # bit-serial inputs (1 bit per slice): 8 activations per vector, 8× the time of one
    path = tmp_path / "serial.yaml"
    path.write_text(TOY.read_text().replace("dac_bits: 8", "dac_bits: 1"))
    serial = simulate(workload(1), path, "bp")
    assert accesses(serial, "bp", "fwd", "weights", "forward", "mvm") == 3 * 8
    assert accesses(serial, "bp", "fwd", "weights", "backward", "mvm_transposed") == 2 * 8
    one = simulate(workload(1), TOY, "bp").rules["bp"].step.counts.accesses
    key = ("fwd", "weights", "forward", "mvm")
    assert serial.rules["bp"].step.counts.accesses[key].accesses == 8 * one[key].accesses


def test_measured_update_sparsity_sets_the_cells_programmed():
    doc = copy.deepcopy(workload(2))
    doc["update_sparsity"] = {
        "measured": "stored weight levels before and after every optimizer step",
        "batch_size": 2,
        "layers": {
            name: {
                "weights": weights,
                "levels": "int8",
                "changed_fraction": [0.25, 0.25],
                "mean_level_change": [1.0, 1.0],
                "steps": [10, 10],
                "max_changes_per_weight": 8,
                "mean_changes_per_weight": 5.0,
            }
            for name, weights in (("fc1", 24), ("fc2", 16), ("fc3", 12))
        },
    }
    work = workload_from_dict(doc)
    result = simulate(work, TOY, "bp,fa")
    # a quarter of each layer's weights and biases, rounded: 7, 5 and 4 weights, 2 cells each
    cells = (7 + 5 + 4) * 2
    for rule in ("bp", "fa"):
        assert accesses(result, rule, "fwd", "weights", "update", "write") == cells
        weights = next(t for t in result.rules[rule].wear.tensors if t.tensor == "weights")
        assert weights.measured
        # the most-changed weight changed in 8 of 20 steps: its cells, 0.4 programs per step
        assert weights.max_writes_per_cell_per_step == pytest.approx(0.4)
        assert weights.steps_to_endurance == pytest.approx(1e6 / 0.4)
    assert result.rules["fa"].wear.update_fraction == {"fc1": 0.25, "fc2": 0.25, "fc3": 0.25}


def measured(batch: int, fraction: float) -> dict:
    """The toy workload with every layer measured to change ``fraction`` of its levels."""
    doc = copy.deepcopy(workload(batch))
    doc["update_sparsity"] = {
        "measured": "stored weight levels before and after every optimizer step",
        "batch_size": batch,
        "layers": {
            name: {
                "weights": weights,
                "levels": "int8",
                "changed_fraction": [fraction],
                "mean_level_change": [1.0],
                "steps": [10],
                "max_changes_per_weight": 10,
                "mean_changes_per_weight": 10 * fraction,
            }
            for name, weights in (("fc1", 24), ("fc2", 16), ("fc3", 12))
        },
    }
    return doc


def test_the_gap_names_the_levels_each_rule_reprograms(tmp_path):
    """BP trained to change a quarter of its levels, FA half: on the mirror chip BP pays its
    mirror's sync, FA the extra cells of W it reprograms, each in its own cause."""
    from hwsim.sim.explain import explain_gap

    chip_path = mirror_chip(tmp_path, bp_weight_access="mirror")
    chip = load_chip(chip_path)
    bp = simulate(measured(2, 0.25), chip, "bp").rules["bp"]
    fa = simulate(measured(2, 0.5), chip, "fa").rules["fa"]
    gap = explain_gap(bp, fa, chip).energy
    # W with bias: BP round(¼ of 28, 20, 15) = 7 + 5 + 4 weights, FA 14 + 10 + 8; 2 cells each
    assert gap.causes_pj["weight_updates"] == pytest.approx(((7 + 5 + 4) - (14 + 10 + 8)) * 2 * 6)
    # BP's mirror (no bias): 4 of fc2's 16 and 3 of fc3's 12 weights, their values and indices
    # (4 bits for 16, 4 bits for 12) on the link
    sync = (4 + 3) * 2 * CELL_PJ + (4 * 12 + 3 * 12) * 0.1
    assert gap.causes_pj["mirror_sync"] == pytest.approx(sync)
    assert sum(gap.causes_pj.values()) == pytest.approx(gap.difference_pj)


def chip_with(tmp_path: Path, name: str, **fwd: int) -> Path:
    """The toy chip with some of the ``fwd`` level's keys changed."""
    text = TOY.read_text()
    head, sep, tail = text.partition("  bwd:")
    for key, value in fwd.items():
        start = head.index(f"{key}: ")
        end = head.index(",", start)
        head = f"{head[:start]}{key}: {value}{head[end:]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(head + sep + tail)
    return path


def test_a_transposed_read_leaves_the_arrays_of_the_bias_row_alone(tmp_path):
    """mlp:6-8-8-3 on 8 × 8 arrays: fc2's W takes 8 input rows + 1 bias row = 9 rows, 8 × 2 = 16
    columns, so ⌈9/8⌉ × ⌈16/8⌉ = 4 arrays, 2 of which hold only the bias row; fc3's 9 rows ×
    6 columns take 2 arrays, 1 only the bias row. The forward pass drives the bias row (a
    constant 1) and activates all of them; the error pass senses the input rows only (no error
    goes to a constant), so it activates 2 + 1 = 3 arrays per sample, not 6."""
    chip = chip_with(tmp_path, "wide", arrays=8)  # fc1 2 + fc2 4 + fc3 2 arrays of W
    batch = 2
    result = simulate(build_workload("mlp:6-8-8-3", batch_size=batch), chip, "bp")
    # forward: fc1 ⌈7/8⌉ × ⌈16/8⌉ = 2, fc2 4, fc3 2 arrays per sample
    assert accesses(result, "bp", "fwd", "weights", "forward", "mvm") == batch * (2 + 4 + 2)
    assert accesses(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == batch * 3
    assert energy(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == (
        batch * 3 * TRANSPOSED_PJ
    )
    counts = result.rules["bp"].step.counts.accesses
    # the bits multiplied in place: fc2's 8 × 8 and fc3's 8 × 3 weights of 8 bits, per sample
    assert counts[("fwd", "weights", "backward", "mvm_transposed")].bits == batch * (64 + 24) * 8
    # every pass converts its 8 rows once more (2 cells per weight)
    assert accesses(result, "bp", "fwd", "weights", "backward", "convert") == batch * 3 * 8


def test_a_transposed_read_senses_each_cell_significance_apart(tmp_path):
    """2-bit cells: an 8-bit weight takes k = 4 cells in adjacent columns, of significance 1,
    4, 16 and 64. Driving all its columns with the error at once would add the four cells'
    currents with equal weight in the row. So a transposed pass drives one significance's
    columns at a time: 4 sub-activations, each converting all 8 rows, 4 × 5 = 20 cycles per
    vector. The array and its drivers work as in one activation (each cell conducts once,
    each column is driven once): one ``mvm_transposed`` access of 32 pJ, plus (4 − 1) × 8 = 24
    more conversions of 1 pJ. Each row's 4 results are then shifted (by 0, 2, 4 and 6 bits)
    and added in digital: 3 shift-adds per row, 24 per pass, one per extra conversion.

    mlp:6-4-4-3: fc2 5 rows × 4 · 4 = 16 columns, 2 arrays; fc3 5 rows × 12 columns, 2
    arrays (the bias row shares the arrays of the input rows); fc1 7 × 16, 2."""
    chip = chip_with(tmp_path, "two_bit", arrays=8, bits_per_cell=2)
    batch = 2
    result = simulate(workload(batch), chip, "bp")
    passes = batch * (2 + 2)
    assert accesses(result, "bp", "fwd", "weights", "backward", "mvm_transposed") == passes
    assert accesses(result, "bp", "fwd", "weights", "backward", "convert") == passes * 24
    back = result.rules["bp"].step.energy.by_phase_pj["backward"]
    one_cell = simulate(workload(batch), chip_with(tmp_path, "one", bits_per_cell=8), "bp")
    # 8-bit cells: one cell per weight, nothing to recombine; fc2 and fc3 1 array each
    assert accesses(one_cell, "bp", "fwd", "weights", "backward", "convert") == 0
    assert accesses(one_cell, "bp", "fwd", "weights", "backward", "mvm_transposed") == batch * 2
    # the error pass's other traffic is the same (errors in the SRAM): the difference is the
    # passes (4 against 2 per sample, 32 pJ each) and the 24 conversions of each pass
    one_back = one_cell.rules["bp"].step.energy.by_phase_pj["backward"]
    assert back - one_back == pytest.approx((passes - batch * 2) * TRANSPOSED_PJ + passes * 24)
    # the time of a pass: 4 sub-activations of 5 cycles, per sample (1 sample per fetch)
    the_chip = load_chip(chip)
    work = workload_from_dict(workload(batch))
    plan = make_plan(work, the_chip, parse_rule("bp"), batch)
    busy = [
        t.cycles
        for piece in lower_step(work, the_chip, plan).pieces
        for task in piece
        if task.phase == "backward"
        for t in task.loads
        if t.direction == "mvm_transposed"
    ]
    assert busy == [4 * 5] * (batch * 2)  # fc3 and fc2, each sample
