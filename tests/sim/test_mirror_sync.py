"""A digital mirror synchronized whole or with only its changed weights (``training.mirror_sync``),
and IFA's first copy of W₀ through ``mirror_sync_via``, counted by hand on the toy chip.

Toy chip (data/toy_chip.yaml): BP mirror mode, the mirror in fbmem (16-bit words, 16 bits per
cycle, write 3 pJ, latency 1 cycle), dram 64-bit words in bursts of 2 (128 bits per access,
100 pJ), interconnect 0.5 pJ/bit. MLP 4-3-2, batch 3, 8-bit weights: only layer 1 (``fc2``)
sends an error down, so only it has a mirror: 6 weights, 48 bits, 3 fbmem words; an index into
it takes ⌈log₂ 6⌉ = 3 bits, so a changed weight with its index is 8 + 3 = 11 bits.

A synchronization that sends what changed carries the smaller of all of W (48 bits) and the
changed values with their indices (11 bits each). The mirror then writes each changed value in
place by one masked write (SRAM byte or bit enables) of the 16-bit word it lies in — no read
first; c changed values are c writes, not ⌈8c / 16⌉.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.counting import AccessCount
from hwsim.sim.model_specs import build_workload

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")
A = AccessCount
MIRROR_WRITE = ("fbmem", "weight_mirror", "update", "write")


def toy(**changes):
    placement = {**TOY.placement, **changes.pop("placement", {})}
    if changes.get("feedback_storage") == "prng":
        placement.pop("feedback_weights")
    return dataclasses.replace(TOY, placement=placement, **changes)


def measured(fraction: float | None, **kw):
    """MLP 4-3-2 at batch 3, every layer measured to change ``fraction`` of its weight levels
    per update (None: not measured, every weight counts as changed)."""
    doc = copy.deepcopy(build_workload("mlp:4-3-2", batch_size=3, **kw))
    if fraction is not None:
        doc["update_sparsity"] = {
            "measured": "stored weight levels before and after every optimizer step",
            "batch_size": 3,
            "layers": {
                name: {
                    "weights": weights,
                    "levels": f"int{kw.get('weight_bits', 8)}",
                    "changed_fraction": [fraction],
                    "mean_level_change": [1.0],
                    "steps": [10],
                    "max_changes_per_weight": 10,
                    "mean_changes_per_weight": 10 * fraction,
                }
                for name, weights in (("fc1", 12), ("fc2", 6))
            },
        }
    return workload_from_dict(doc)


def bp(work, chip, rules: str = "bp"):
    return simulate(work, chip, rules)


def test_full_sync_rewrites_the_whole_mirror_whatever_changed():
    # the default: a quarter of the levels changed, still all 48 bits carried and written
    r = bp(measured(0.25), toy()).rules["bp"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(48, 3, 3)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 48
    assert r.sync_write_bits == 48


def test_changed_sync_carries_values_with_indices_and_writes_each_in_place():
    # round(0.25 × 6) = 2 changed weights: 2 × (8 + 3) = 22 bits < 48 carried; two masked
    # writes of 8 bits each (2 words, 2 accesses), where the full sync writes 3 words
    result = bp(measured(0.25), toy(mirror_sync="changed"), "bp,fa")
    r = result.rules["bp"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(16, 2, 2)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 22
    assert r.sync_write_bits == 16
    # BP's mirror sync (FA has none): 2 writes × 3 pJ + 22 bits × 0.5 pJ = 17 pJ; full: 33 pJ
    assert result.gaps_to_bp["fa"].energy.causes_pj["mirror_sync"] == pytest.approx(17.0)
    full = bp(measured(0.25), toy(), "bp,fa")
    assert full.gaps_to_bp["fa"].energy.causes_pj["mirror_sync"] == pytest.approx(3 * 3 + 48 * 0.5)


def test_changed_sync_equals_full_without_a_measurement():
    # nothing measured: every weight counts as changed, 6 × 11 = 66 bits > 48, so all of W
    work = measured(None)
    changed = bp(work, toy(mirror_sync="changed")).rules["bp"]
    full = bp(work, toy()).rules["bp"]
    assert changed.step.counts == full.step.counts
    assert changed.energy_pj == full.energy_pj
    assert changed.latency_cycles == full.latency_cycles


def test_the_payload_decides_even_when_it_means_more_mirror_writes():
    # round(0.7 × 6) = 4 changed: 44 bits < 48, so values and indices go, and the mirror takes
    # 4 single-value writes where a full rewrite is 3 words (the sync unit decides by the size
    # of what it sends, not by prices: counts never depend on prices)
    r = bp(measured(0.7), toy(mirror_sync="changed")).rules["bp"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(32, 4, 4)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 44
    # all 6 changed: 66 bits > 48, the whole mirror again
    r = bp(measured(1.0), toy(mirror_sync="changed")).rules["bp"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(48, 3, 3)


def test_changed_sync_through_dram_stages_only_the_payload():
    # the 22 bits are written to dram (1 word of 64, 1 burst) and read back, each leg over the
    # interconnect (44 bits); then the 2 masked writes into the mirror
    r = bp(measured(0.25), toy(mirror_sync="changed", mirror_sync_via="dram")).rules["bp"]
    c = r.step.counts
    assert c.accesses[("dram", "weight_mirror", "update", "write")] == A(22, 1, 1)
    assert c.accesses[("dram", "weight_mirror", "update", "read")] == A(22, 1, 1)
    assert c.accesses[MIRROR_WRITE] == A(16, 2, 2)
    assert c.interconnect_bits[("weight_mirror", "update")] == 44
    assert r.sync_write_bits == 22 + 16


def test_a_value_that_straddles_words_takes_a_write_of_each():
    # 12-bit weights in 16-bit words: packed at multiples of gcd(12, 16) = 4 bits, a value can
    # start 8 bits into a word and end in the next, so it takes up to ⌈(12 − 4) / 16⌉ + 1 = 2
    # writes. Full mirror: 72 bits, 5 words; round(0.25 × 6) = 2 changed, 2 × (12 + 3) = 30
    # bits carried, 2 × 2 = 4 writes
    r = bp(measured(0.25, weight_bits=12), toy(mirror_sync="changed")).rules["bp"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(24, 4, 4)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 30


def test_a_sign_mirror_sends_its_changed_signs_when_that_is_fewer_bits():
    # uSF's 1-bit sign mirror of fc2: 6 bits whole. round(0.1 × 6) = 1 weight changed its
    # level (an upper bound on its sign flips): 1 + 3 = 4 bits < 6, one masked write
    r = simulate(measured(0.1), toy(mirror_sync="changed"), "usf").rules["usf"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(1, 1, 1)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 4
    # two changed: 2 × 4 = 8 bits > 6, the sign mirror is rewritten whole
    r = simulate(measured(0.25), toy(mirror_sync="changed"), "usf").rules["usf"]
    assert r.step.counts.accesses[MIRROR_WRITE] == A(6, 1, 1)


def test_a_scattered_write_takes_a_cycle_per_value():
    # fbmem: latency 1 cycle, then one 16-bit word per cycle. Full: 1 + ⌈48 / 16⌉ = 4 cycles;
    # changed: 1 + 2 writes of one word each = 3 cycles
    def mirror_write_cycles(chip) -> list[int]:
        r = simulate(measured(0.25), chip, "bp", timeline=True).rules["bp"]
        assert r.step.timeline is not None
        return [
            e.end_cycle - e.start_cycle
            for e in r.step.timeline
            if (e.resource, e.phase, e.tensor) == ("fbmem", "update", "weight_mirror")
        ]

    assert mirror_write_cycles(toy()) == [4]
    assert mirror_write_cycles(toy(mirror_sync="changed")) == [3]


def test_the_first_copy_is_always_all_of_w():
    r = bp(measured(0.25), toy(mirror_sync="changed")).rules["bp"]
    assert r.init.counts.accesses[("fbmem", "weight_mirror", "init", "write")] == A(48, 3, 3)
    assert r.init.counts.interconnect_bits == {("weight_mirror", "init"): 48}


def test_ifa_copies_w0_into_b_the_way_bp_copies_w_into_its_mirror():
    """Cores that share only DRAM: IFA's B = W₀ crosses to the error core as BP's first copy
    does. fc2's W₀: read (48 bits, 3 wmem words), written to dram and read back (48 bits, 1
    word, 1 burst each), written into B (3 fbmem words); 48 bits on the link per leg."""
    chip = toy(mirror_sync_via="dram")
    result = simulate(measured(None), chip, "bp,ifa")
    ifa, bp_init = result.rules["ifa"].init, result.rules["bp"].init
    assert ifa.counts.accesses == {
        ("dram", "feedback_weights", "init", "read"): A(48, 1, 1),
        ("dram", "feedback_weights", "init", "write"): A(48, 1, 1),
        ("fbmem", "feedback_weights", "init", "write"): A(48, 3, 3),
        ("wmem", "weights", "init", "read"): A(48, 3, 3),
    }
    assert ifa.counts.interconnect_bits == {("feedback_weights", "init"): 96}
    # the same traffic as BP's first copy, at the same prices
    assert bp_init.counts.interconnect_bits == {("weight_mirror", "init"): 96}
    assert ifa.energy.total_pj == pytest.approx(bp_init.energy.total_pj)
    # 3 × 2 (read W₀) + 2 × 100 (dram) + 3 × 3 (write B) + 96 × 0.5 (link) = 263 pJ, and
    # wmem's leakage over the copy's time, as long as BP's
    assert ifa.energy.total_pj - ifa.energy.breakdown_pj["leakage"] == pytest.approx(263.0)
    assert ifa.latency_cycles == bp_init.latency_cycles
    # without the via level, the copy crosses the link once (the chip's cores share it)
    direct = simulate(measured(None), toy(), "ifa").rules["ifa"].init
    assert direct.counts.interconnect_bits == {("feedback_weights", "init"): 48}
    assert ("dram", "feedback_weights", "init", "write") not in direct.counts.accesses


def test_ifa_with_regenerated_b_sends_w0_back_through_dram():
    # B regenerated at the error core (6 values), W₀ derived from it goes to the forward core:
    # dram write and read (48 bits, 1 burst each), W written (3 wmem words), 2 × 48 link bits
    chip = toy(mirror_sync_via="dram", feedback_storage="prng", prng_energy_per_value_pj=0.5)
    init = simulate(measured(None), chip, "ifa").rules["ifa"].init
    assert init.counts.accesses == {
        ("dram", "weights", "init", "read"): A(48, 1, 1),
        ("dram", "weights", "init", "write"): A(48, 1, 1),
        ("wmem", "weights", "init", "write"): A(48, 3, 3),
    }
    assert init.counts.generated_values == {"init": 6}
    assert init.counts.interconnect_bits == {("weights", "init"): 96}
