"""BP's gap to every rule, by cause, and each rule's floor: derived by hand on the toy chip.

Toy network and chip as in test_sim_counts.py: MLP 4-3-2 with biases, 8-bit everything, batch 3,
SGD+momentum (1 state tensor), 2 samples per weight fetch (fetch groups of 2 + 1 samples).
Only layer 1 sends an error down: its W, mirror or B is 6 weights × 8 bits = 48 bits = 3 words
of 16 bits in wmem/fbmem, read once per fetch group (2 fetches: 96 bits, 6 accesses).
Toy prices: wmem and fbmem read 2 pJ, write 3 pJ per access; buf (32-bit words) read 4, write 5;
dram (64-bit words, bursts of 2) 100 either way; the link 0.5 pJ/bit; every MAC 0.25 pJ;
leakage 1 mW (wmem) at 1 MHz = 1e-3 W × 1e-6 s = 1000 pJ per cycle.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.dataflow import PHASES
from hwsim.sim.explain import CAUSES, NET_CAUSES, energy_floor, explain_gap
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")
LEAK_PJ_PER_CYCLE = 1000.0


def toy_workload():
    return workload_from_dict(build_workload("mlp:4-3-2", batch_size=3))


def toy(**changes):
    placement = {**TOY.placement, **changes.pop("placement", {})}
    if changes.get("feedback_storage") == "prng":
        placement.pop("feedback_weights")
    return dataclasses.replace(TOY, placement=placement, **changes)


def expected_causes(**named: float) -> dict[str, float]:
    return {c: named.get(c, 0.0) for c in CAUSES}


def check_exact(gap) -> None:
    """The causes (and the net causes) sum to the difference to 1e-9 relative."""
    e = gap.energy
    scale = max(abs(e.bp_pj), abs(e.rule_pj))
    assert math.fsum(e.causes_pj.values()) == pytest.approx(e.difference_pj, abs=1e-9 * scale)
    assert math.fsum(e.net_causes_pj.values()) == pytest.approx(e.difference_pj, abs=1e-9 * scale)
    assert e.difference_pj == e.bp_pj - e.rule_pj
    assert list(e.causes_pj) == list(CAUSES) and list(e.net_causes_pj) == list(NET_CAUSES)


def test_bp_mirror_vs_fa_sram_by_hand():
    # The toy chip itself: BP in mirror mode (mirror in fbmem), FA's B in fbmem.
    r = simulate(toy_workload(), TOY, "bp,fa")
    bp, fa = r.rules["bp"], r.rules["fa"]
    gap = r.gaps_to_bp["fa"]
    check_exact(gap)
    leak = (bp.latency_cycles - fa.latency_cycles) * LEAK_PJ_PER_CYCLE
    causes = expected_causes(
        # sync: layer 1's mirror written once after the update, 3 words × 3 pJ, plus its 48 bits
        # over the link × 0.5 pJ: 9 + 24
        mirror_sync=33.0,
        mirror_reads=12.0,  # 6 accesses × 2 pJ in fbmem
        feedback_reads=-12.0,  # FA reads as much B from the same fbmem: 6 × 2 pJ, the rule's
        leakage=leak,
    )
    assert gap.energy.causes_pj == pytest.approx(causes, abs=1e-9)
    # and the total really is this much: nothing else differs between the two steps
    assert bp.energy_pj - fa.energy_pj == pytest.approx(33.0 + leak, abs=1e-9)
    # init: BP copies W into the mirror once (3 reads × 2 + 3 writes × 3 + 48 bits × 0.5 = 39),
    # FA writes its B once (3 × 3 = 9); each init also leaks for its own duration
    init_leak = (bp.init.latency_cycles - fa.init.latency_cycles) * LEAK_PJ_PER_CYCLE
    assert gap.energy.init_difference_pj == pytest.approx(39.0 - 9.0 + init_leak)
    # the operand reads cancel (same size, same memory): the mirror's sync leads unless leakage
    assert gap.energy.net_causes_pj["operand_net"] == pytest.approx(0.0, abs=1e-9)
    assert gap.energy.leading_cause == ("leakage" if abs(leak) > 33.0 else "mirror_sync")
    # latency: per phase and per unit's stalls, BP minus FA, straight from the simulation
    lat = gap.latency
    assert lat.difference_cycles == bp.latency_cycles - fa.latency_cycles
    assert lat.by_phase_cycles == {
        p: bp.step.phase_latency_cycles[p] - fa.step.phase_latency_cycles[p] for p in PHASES
    }
    assert lat.error_stall_difference_cycles == bp.step.stall_cycles.get(
        "error", 0
    ) - fa.step.stall_cycles.get("error", 0)


def test_bp_transport_vs_fa_prng_by_hand():
    chip = toy(bp_weight_access="transport", feedback_storage="prng", prng_energy_per_value_pj=0.5)
    r = simulate(toy_workload(), chip, "bp,fa")
    bp, fa = r.rules["bp"], r.rules["fa"]
    gap = r.gaps_to_bp["fa"]
    check_exact(gap)
    leak = (bp.latency_cycles - fa.latency_cycles) * LEAK_PJ_PER_CYCLE
    causes = expected_causes(
        transport_wire=48.0,  # layer 1's 48 bits per fetch × 2 fetches over the link × 0.5 pJ
        transport_reads=12.0,  # 6 accesses of W in wmem for the error unit × 2 pJ
        prng_generation=-6.0,  # FA regenerates 6 values per fetch × 2 fetches × 0.5 pJ
        leakage=leak,
    )
    assert gap.energy.causes_pj == pytest.approx(causes, abs=1e-9)
    assert bp.energy_pj - fa.energy_pj == pytest.approx(48.0 + 12.0 - 6.0 + leak, abs=1e-9)
    # neither has an init: BP in transport mode has no mirror, FA's B is regenerated
    assert gap.energy.init_difference_pj == 0.0
    assert gap.energy.net_causes_pj["operand_net"] == pytest.approx(6.0)
    assert gap.energy.net_causes_pj["transport_wire"] == pytest.approx(48.0)


def test_placement_differences_land_in_other():
    # B in buf (global buffer) and buf shrunk to 744 bits: BP-transport stores 704 bits there
    # (optimizer state 184, gradients 184, activations 96 + 120, errors 72 + 48) and fits. FA adds
    # layer 1's B (48 bits): 752 > 744, so the item allocated last spills. The toy pins every
    # class, in its order (B, optimizer state, gradients, activations, errors; layer by layer):
    # the last is layer 1's errors (fc2), which go to dram.
    buf = dataclasses.replace(TOY.memory("buf"), size_bytes=93)
    memories = tuple(buf if m.name == "buf" else m for m in TOY.memories)
    chip = toy(
        bp_weight_access="transport",
        memories=memories,
        placement={"feedback_weights": "buf"},
    )
    r = simulate(toy_workload(), chip, "bp,fa")
    assert r.rules["bp"].placement["errors"]["fc2"] == "buf"
    assert r.rules["fa"].placement["errors"]["fc2"] == "dram"
    assert r.rules["fa"].placement["errors"]["fc1"] == "buf"
    gap = r.gaps_to_bp["fa"]
    check_exact(gap)
    leak = (r.rules["bp"].latency_cycles - r.rules["fa"].latency_cycles) * LEAK_PJ_PER_CYCLE
    # Layer 1's error traffic: written by the loss, read by the backward and by the gradient,
    # 32 bits for the 2-sample fetch group and 16 for the 1-sample one. In buf (32-bit words, 1
    # per access): 2 words each way = 2 × 5 pJ + 4 × 4 pJ = 26 pJ; in dram (64-bit words, bursts
    # of 2): 1 access per move, 6 moves = 600 pJ. BP − FA = 26 − 600 = −574: the backward's
    # reads are error reads (8 − 200 = −192), the loss's writes and the gradient's reads the
    # rest (10 − 200 and 8 − 200: −382).
    causes = expected_causes(
        transport_wire=48.0,
        transport_reads=12.0,
        feedback_reads=-16.0,  # B in buf: 48 bits per fetch = 2 words of 32, × 2 fetches × 4 pJ
        leakage=leak,
        error_reads=-192.0,
        other=-382.0,
    )
    assert gap.energy.causes_pj == pytest.approx(causes, abs=1e-9)
    assert gap.energy.net_causes_pj["operand_net"] == pytest.approx(-4.0)
    # `other` named: all of it is layer 1's errors, placed differently by the two rules
    assert gap.energy.other_by_tensor_pj == pytest.approx({"errors": -382.0}, abs=1e-9)


def test_causes_sum_exactly_on_every_shipped_chip():
    for path in sorted(CHIPS_DIR.glob("*.yaml")):
        r = simulate("mlp:64-48-32-10", path, "bp,fa,ifa,ifa:30")
        assert set(r.gaps_to_bp) == {"fa", "ifa", "ifa:30"}
        for gap in r.gaps_to_bp.values():
            check_exact(gap)
            assert gap.energy.leading_cause in NET_CAUSES
    # no BP, no gap
    assert simulate("mlp:4-3-2", TOY, "fa,ifa").gaps_to_bp == {}


# Floor by hand (batch 3, every stored tensor at its home level; reads ⌈⌈bits/word⌉/burst⌉
# accesses at the read price, writes likewise for what the step produces or updates):
#   weights   L0 15 × 8 = 120 bits, wmem: 8 words: read 8 × 2 + write 8 × 3 = 40
#             L1  8 × 8 =  64 bits, wmem: 4 words: 8 + 12                    = 20
#   opt state L0 120 bits, buf: 4 words of 32: read 4 × 4 + write 4 × 5       = 36
#             L1  64 bits, buf: 2 words: 8 + 10                              = 18
#   gradients L0 120 bits = 36, L1 64 bits = 18 (as the optimizer state)      = 54
#   activations L0 (the input, 3 × 4 × 8 = 96 bits, 3 words): read only 3 × 4 = 12
#             L1 (input 72 + logits 48 = 120 bits, 4 words): 16 + 20          = 36
#   errors    L0 3 × 3 × 8 = 72 bits, 3 words: 12 + 15                        = 27
#             L1 3 × 2 × 8 = 48 bits, 2 words: 8 + 10                         = 18
#   common memory: 40 + 20 + 36 + 18 + 54 + 12 + 36 + 27 + 18                = 261
#   compute: 172 MACs × 0.25 pJ                                               = 43
#   FA-sram: + B of L1 in fbmem, 48 bits = 3 words, read only: 3 × 2 = 6  → 310
#   BP-mirror: + mirror of L1 in fbmem, read 3 × 2 + written 3 × 3 = 15   → 319
#   BP-transport, FA-prng: nothing more                                    → 304
FLOOR_CASES = {
    "fa-sram": ("fa", {}, 310.0, {"feedback_weights": 6.0}),
    "bp-mirror": ("bp", {}, 319.0, {"weight_mirror": 15.0}),
    "bp-transport": ("bp", {"bp_weight_access": "transport"}, 304.0, {}),
    "fa-prng": ("fa", {"feedback_storage": "prng", "prng_energy_per_value_pj": 0.5}, 304.0, {}),
}
COMMON_FLOOR = {
    "weights": 60.0,
    "optimizer_state": 54.0,
    "gradients": 54.0,
    "activations": 48.0,
    "errors": 45.0,
}


@pytest.mark.parametrize("case", sorted(FLOOR_CASES))
def test_floor_by_hand(case):
    spec, changes, total, extra = FLOOR_CASES[case]
    chip = toy(**changes)
    work = toy_workload()
    result = simulate(work, chip, spec).rules[spec]
    floor = result.floor
    assert floor is not None
    assert floor.total_pj == pytest.approx(total)
    assert floor.compute_pj == pytest.approx(43.0)
    assert floor.memory_by_tensor_pj == pytest.approx({**COMMON_FLOOR, **extra})
    assert floor.memory_by_level_pj == pytest.approx(
        {"wmem": 60.0, "buf": 201.0, **({"fbmem": sum(extra.values())} if extra else {})}
    )
    # the floor is a floor: the simulated step costs at least as much; the ratio is reported
    assert result.energy_pj >= floor.total_pj
    assert result.energy_over_floor == pytest.approx(result.energy_pj / total)
    # the same function, called directly on the plan
    plan = make_plan(work, chip, parse_rule(spec), 3)
    assert energy_floor(work, chip, plan, result.step.counts) == floor


def test_explain_gap_called_directly_matches_the_api():
    r = simulate(toy_workload(), TOY, "bp,ifa")
    assert explain_gap(r.rules["bp"], r.rules["ifa"], TOY) == r.gaps_to_bp["ifa"]


def test_json_keys_through_the_cli():
    args = ["simulate", "--model", "mlp:4-3-2", "--batch-size", "3", "--optimizer", "momentum"]
    args += ["--chip", str(DATA / "toy_chip.yaml"), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rules = json.loads(result.output)["rules"]
    assert "gap_to_bp" not in rules["bp"]
    for spec in ("fa", "ifa"):
        gap = rules[spec]["gap_to_bp"]
        assert gap["rule"] == spec
        energy = gap["energy_pj"]
        assert set(energy["causes"]) == set(CAUSES)
        assert energy["causes"]["mirror_sync"] == pytest.approx(33.0)
        assert energy["causes"]["mirror_reads"] == pytest.approx(12.0)
        assert energy["causes"]["feedback_reads"] == pytest.approx(-12.0)
        assert energy["difference"] == pytest.approx(
            rules["bp"]["energy_pj"]["total"] - rules[spec]["energy_pj"]["total"]
        )
        assert energy["leading_cause"] in NET_CAUSES
        assert set(gap["latency_cycles"]["by_phase"]) == set(PHASES)
        assert "error_stall_difference" in gap["latency_cycles"]
    assert rules["fa"]["floor_pj"]["total"] == pytest.approx(310.0)
    assert rules["bp"]["floor_pj"]["total"] == pytest.approx(319.0)
    for block in rules.values():
        assert block["energy_over_floor"] == pytest.approx(
            block["energy_pj"]["total"] / block["floor_pj"]["total"]
        )
    # without BP among the rules there is no gap to explain
    alone = CliRunner().invoke(main, [*args, "--algo", "fa"])
    assert alone.exit_code == 0, alone.output
    assert "gap_to_bp" not in json.loads(alone.output)["rules"]["fa"]
