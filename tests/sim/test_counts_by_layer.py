"""Counts split by layer: they add up to the aggregated counts, and match a hand count.

Toy network and chip as in test_sim_counts.py: MLP 4-3-2 with biases, 8-bit weights, batch 3,
on data/toy_chip.yaml, whose register file takes 2 samples per weight fetch, so every phase
walks the batch in 2 fetch groups (2 + 1 samples) and reads each layer's W once per group.
Layer 0: 12 weights + 3 biases = 15 × 8 = 120 bits; layer 1: 6 + 2 = 8 × 8 = 64 bits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwsim.core.resources import CHIPS_DIR
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.counting import AccessCount, count_step, count_step_by_layer
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload

TOY = load_chip(Path(__file__).parent / "data" / "toy_chip.yaml")
#: the default network of `hwsim simulate` and `hwsim compare`
DEFAULT_MODEL = "mlp:784-256-256-256-256-256-10"
ALL_RULES = "bp,fa,ifa,ifa:30,dfa,usf,brsf,frsf,kp"


def _toy():
    return workload_from_dict(build_workload("mlp:4-3-2", batch_size=3))


def test_forward_weight_reads_per_layer_are_the_layers_bits_per_fetch_group():
    work = _toy()
    first, second = (layer.name for layer in work.layers)
    plan = make_plan(work, TOY, parse_rule("fa"), 3)
    _, by_layer = count_step_by_layer(work, TOY, plan)
    key = ("wmem", "weights", "forward", "read")
    # 2 fetch groups × 120 bits = 240 bits: 120 bits are 8 words of 16 bits (7.5, rounded up),
    # one access per word; 64 bits are 4 words
    assert by_layer[first].accesses[key] == AccessCount(240, 16, 16)
    assert by_layer[second].accesses[key] == AccessCount(128, 8, 8)
    # the update reads and writes each layer's W (and bias) once per step
    for direction in ("read", "write"):
        update = ("wmem", "weights", "update", direction)
        assert by_layer[first].accesses[update].bits == 120
        assert by_layer[second].accesses[update].bits == 64
    # layer 0 sends no error down: no feedback reads there; layer 1 reads B (6 × 8 bits) per group
    fb = [k for k in by_layer[first].accesses if k[1] == "feedback_weights"]
    assert fb == []
    assert by_layer[second].accesses[("fbmem", "feedback_weights", "backward", "read")].bits == 96
    # the loss writes the top layer's output errors: 3 samples × 2 outputs × 8 bits = 48 bits
    loss_and_down = by_layer[second].accesses[("buf", "errors", "backward", "write")].bits
    assert loss_and_down == 48 + 3 * 3 * 8  # plus layer 1's error sent down to layer 0
    # MACs: forward 12 + 6 per sample
    assert by_layer[first].macs_by_phase()["forward"] == 3 * 12
    assert by_layer[second].macs_by_phase()["forward"] == 3 * 6


@pytest.mark.parametrize("chip_name", ["edge_sram", "split_cores", "dfa_prng"])
def test_layers_add_up_exactly_to_the_step_on_the_default_workload(chip_name):
    chip = load_chip(CHIPS_DIR / f"{chip_name}.yaml")
    work = workload_from_dict(build_workload(DEFAULT_MODEL, batch_size=64))
    names = [layer.name for layer in work.layers]
    for spec in ALL_RULES.split(","):
        rule = parse_rule(spec)
        if chip.feedback_storage in ("prng", "rom") and spec in ("kp", "brsf"):
            continue  # cannot train there
        plan = make_plan(work, chip, rule, 64)
        step, by_layer = count_step_by_layer(work, chip, plan)
        assert step == count_step(work, chip, plan)
        assert list(by_layer) == names  # every layer has traffic, in layer order
        for key, count in step.accesses.items():
            parts = [c.accesses[key] for c in by_layer.values() if key in c.accesses]
            assert sum((p.bits for p in parts), 0) == count.bits, (spec, key)
            assert sum((p.words for p in parts), 0) == count.words, (spec, key)
            assert sum((p.accesses for p in parts), 0) == count.accesses, (spec, key)
        keys = {k for c in by_layer.values() for k in c.accesses}
        assert keys == set(step.accesses), spec
        for link_key, bits in step.interconnect_bits.items():
            assert sum(c.interconnect_bits.get(link_key, 0) for c in by_layer.values()) == bits
        for mac_key, macs in step.macs.items():
            assert sum(c.macs.get(mac_key, 0) for c in by_layer.values()) == macs


def test_rule_result_json_has_counts_and_energy_by_layer():
    result = simulate(DEFAULT_MODEL, CHIPS_DIR / "edge_sram.yaml", "bp,fa")
    for spec, rule in result.rules.items():
        d = rule.to_dict()
        by_layer, energy = d["counts_by_layer"], d["energy_by_layer_pj"]
        assert list(by_layer) == list(energy) == list(d["loop_orders"])  # layer order
        # every level/tensor/phase/direction of `counts` is the sum of the layers' rows
        for level, tensors in d["counts"].items():
            for tensor, phases in tensors.items():
                for phase, directions in phases.items():
                    for direction, c in directions.items():
                        rows = [
                            layer[level][tensor][phase][direction]
                            for layer in by_layer.values()
                            if direction in layer.get(level, {}).get(tensor, {}).get(phase, {})
                        ]
                        assert sum(r["bits"] for r in rows) == c["bits"]
                        assert sum(r["accesses"] for r in rows) == c["accesses"]
                        assert sum(r["energy_pj"] for r in rows) == pytest.approx(
                            c["energy_pj"], rel=1e-12
                        )
        # layers carry every part but leakage, which is the step's
        assert all(e["breakdown"]["leakage"] == 0 for e in energy.values())
        total = sum(e["total"] for e in energy.values())
        leakage = d["energy_pj"]["breakdown"]["leakage"]
        assert total + leakage == pytest.approx(d["energy_pj"]["total"], rel=1e-12), spec
