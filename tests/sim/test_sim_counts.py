"""Hand-computed counts on a toy network and chip, for every rule and mode.

Toy network: MLP 4-3-2 with biases, 8-bit everything, batch 3, SGD+momentum (1 state tensor).
Toy chip (data/toy_chip.yaml): 2 samples per weight fetch, so fetch groups are 2 + 1 samples.
Layer 0: 12 weights + 3 biases, layer 1: 6 weights + 2 biases. Word widths: wmem/fbmem/rom 16,
buf 32, dram 64 with bursts of 2 words.

Layer 0 sends no error down (the input needs none), so only layer 1 has a mirror or a feedback
matrix: 6 weights × 8 bits = 48 bits = 3 words of 16 bits in wmem/fbmem/rom. Nothing is stored,
synchronized or initialized for layer 0.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hwsim.core.errors import InputError
from hwsim.core.resources import CHIPS_DIR
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.counting import AccessCount, count_init, count_step, walk_counts
from hwsim.sim.loops import batch_outer
from hwsim.sim.mapper import candidate_walks, make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.simulation import simulate_init, simulate_step

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")


def toy_workload(batch_size: int = 3, **kw):
    return workload_from_dict(build_workload("mlp:4-3-2", batch_size=batch_size, **kw))


def chip(**changes):
    placement = {**TOY.placement, **changes.pop("placement", {})}
    return dataclasses.replace(TOY, placement=placement, **changes)


A = AccessCount
# Traffic every rule has (bits, words, accesses), worked out in the module docstring's terms.
COMMON = {
    # forward: W per fetch group (2 groups): (120 bits → 8 words + 64 → 4) × 2
    ("wmem", "weights", "forward", "read"): A(368, 24, 24),
    # x: layer 0 32 bit/sample (64 → 2 words, 32 → 1), layer 1 24 bit/sample (48 → 2, 24 → 1)
    ("buf", "activations", "forward", "read"): A(168, 6, 6),
    # y: 24 bit/sample (72 bits: 2 + 1 words), logits 16 bit/sample (48 bits: 1 + 1 words)
    ("buf", "activations", "forward", "write"): A(120, 5, 5),
    # loss error (48 bits: 1 + 1) and layer 1's error sent down (72 bits: 2 + 1)
    ("buf", "errors", "backward", "write"): A(120, 5, 5),
    ("buf", "errors", "backward", "read"): A(48, 2, 2),
    ("buf", "activations", "gradient", "read"): A(168, 6, 6),
    ("buf", "errors", "gradient", "read"): A(120, 5, 5),
    # ΔW: written by both fetch groups, read back by the second: (120 → 4 words + 64 → 2)
    ("buf", "gradients", "gradient", "write"): A(368, 12, 12),
    ("buf", "gradients", "gradient", "read"): A(184, 6, 6),
    ("buf", "gradients", "update", "read"): A(184, 6, 6),
    ("wmem", "weights", "update", "read"): A(184, 12, 12),
    ("wmem", "weights", "update", "write"): A(184, 12, 12),
    ("buf", "optimizer_state", "update", "read"): A(184, 6, 6),
    ("buf", "optimizer_state", "update", "write"): A(184, 6, 6),
}
MACS = {"forward": 54, "backward": 18, "gradient": 54, "update": 46}

# (rule, chip changes) → (extra step counts, step interconnect bits, generated values,
#                          init counts, init interconnect bits, init generated values)
CASES = {
    "bp-transport": (
        "bp",
        {"bp_weight_access": "transport"},
        {("wmem", "weights", "backward", "transport"): A(96, 6, 6)},  # layer 1's 48 bits × 2
        {("weights", "backward"): 96},
        {},
        {},
        {},
        {},
    ),
    "bp-mirror": (
        "bp",
        {"bp_weight_access": "mirror"},
        {
            ("fbmem", "weight_mirror", "backward", "read"): A(96, 6, 6),
            # sync after the update: layer 1's 48 bits (3 words); layer 0 has no mirror
            ("fbmem", "weight_mirror", "update", "write"): A(48, 3, 3),
        },
        {("weight_mirror", "update"): 48},
        {},
        {  # the first copy of layer 1's W into the mirror
            ("wmem", "weights", "init", "read"): A(48, 3, 3),
            ("fbmem", "weight_mirror", "init", "write"): A(48, 3, 3),
        },
        {("weight_mirror", "init"): 48},
        {},
    ),
    "fa-sram": (
        "fa",
        {"feedback_storage": "sram"},
        {("fbmem", "feedback_weights", "backward", "read"): A(96, 6, 6)},
        {},
        {},
        {("fbmem", "feedback_weights", "init", "write"): A(48, 3, 3)},  # layer 1's B only
        {},
        {},
    ),
    "ifa-sram": (
        "ifa",
        {"feedback_storage": "sram"},
        {("fbmem", "feedback_weights", "backward", "read"): A(96, 6, 6)},
        {},
        {},
        {  # B = W₀ for layer 1: read its 48 bits, carry them, write them
            ("wmem", "weights", "init", "read"): A(48, 3, 3),
            ("fbmem", "feedback_weights", "init", "write"): A(48, 3, 3),
        },
        {("feedback_weights", "init"): 48},
        {},
    ),
    "fa-rom": (
        "fa",
        {"feedback_storage": "rom", "placement": {"feedback_weights": "rom"}},
        {("rom", "feedback_weights", "backward", "read"): A(96, 6, 6)},
        {},
        {},
        {},
        {},
        {},
    ),
    "ifa-rom": (
        "ifa",
        {"feedback_storage": "rom", "placement": {"feedback_weights": "rom"}},
        {("rom", "feedback_weights", "backward", "read"): A(96, 6, 6)},
        {},
        {},
        {  # W₀ = B for layer 1, read from ROM; layer 0 keeps its random init
            ("rom", "feedback_weights", "init", "read"): A(48, 3, 3),
            ("wmem", "weights", "init", "write"): A(48, 3, 3),
        },
        {("weights", "init"): 48},
        {},
    ),
    "fa-dram": (
        "fa",
        {"feedback_storage": "dram", "placement": {"feedback_weights": "dram"}},
        # 48 bits per fetch: 1 word of 64 bits, 1 burst; two fetches
        {("dram", "feedback_weights", "backward", "read"): A(96, 2, 2)},
        {},
        {},
        # layer 1's 48 bits → 1 word of 64 → 1 burst
        {("dram", "feedback_weights", "init", "write"): A(48, 1, 1)},
        {},
        {},
    ),
    "fa-prng": (
        "fa",
        {"feedback_storage": "prng", "prng_energy_per_value_pj": 0.5},
        {},
        {},
        {"backward": 12},  # layer 1's 6 values, regenerated for each of 2 fetch groups
        {},
        {},
        {},
    ),
    "ifa-prng": (
        "ifa",
        {"feedback_storage": "prng", "prng_energy_per_value_pj": 0.5},
        {},
        {},
        {"backward": 12},
        # W₀ = B for layer 1: its 6 values generated once, written as 48 bits
        {("wmem", "weights", "init", "write"): A(48, 3, 3)},
        {("weights", "init"): 48},
        {"init": 6},
    ),
}


def _prng_placement(changes):
    if changes.get("feedback_storage") == "prng":
        placement = {k: v for k, v in TOY.placement.items() if k != "feedback_weights"}
        return dataclasses.replace(TOY, placement=placement, **changes)
    return chip(**changes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_counts_match_hand_computation_and_simulation(case):
    spec, changes, extra, link, generated, init, init_link, init_generated = CASES[case]
    the_chip = _prng_placement(dict(changes))
    work = toy_workload()
    plan = make_plan(work, the_chip, parse_rule(spec), 3)
    # every phase walks groups of 2 + 1 samples, each with the whole tensor
    assert {w.groups for w in plan.walks.values()} == {((2, 1), (1, 1))}
    assert {w.tile_count for w in plan.walks.values()} == {1}
    closed = count_step(work, the_chip, plan)
    assert closed.accesses == dict(sorted({**COMMON, **extra}.items()))
    assert closed.interconnect_bits == link
    assert closed.macs_by_phase() == MACS
    assert closed.generated_values == generated
    closed_init = count_init(work, the_chip, plan)
    assert closed_init.accesses == dict(sorted(init.items()))
    assert closed_init.interconnect_bits == init_link
    assert closed_init.generated_values == init_generated
    # the SimPy simulation tallies exactly the same
    assert simulate_step(work, the_chip, plan).counts == closed
    assert simulate_init(work, the_chip, plan).counts == closed_init


@pytest.mark.parametrize("case", sorted(CASES))
def test_transport_sync_and_feedback_reads_by_rule(case):
    spec, changes, *_ = CASES[case]
    the_chip = _prng_placement(dict(changes))
    r = simulate(toy_workload(), the_chip, spec).rules[parse_rule(spec).spec]
    if spec != "bp":
        assert r.weight_transport_bits == 0 and r.sync_write_bits == 0
    elif changes["bp_weight_access"] == "transport":
        assert (r.weight_transport_bits, r.sync_write_bits) == (96, 0)
    else:
        assert (r.weight_transport_bits, r.sync_write_bits) == (0, 48)
    stored = spec != "bp" and changes.get("feedback_storage") != "prng"
    assert r.feedback_read_bits == (96 if stored else 0)


def test_prng_stores_nothing_and_pays_generation_energy():
    the_chip = _prng_placement({"feedback_storage": "prng", "prng_energy_per_value_pj": 0.5})
    r = simulate(toy_workload(), the_chip, "fa").rules["fa"]
    assert "feedback_weights" not in r.placement
    assert not any(key[1] == "feedback_weights" for key in r.step.counts.accesses)
    assert r.step.energy.breakdown_pj["feedback_generation"] == 12 * 0.5
    assert r.step.energy.by_phase_pj["backward"] >= 6.0


def test_soft_ifa_counts_like_ifa():
    r = simulate(toy_workload(), TOY, "ifa,ifa:45")
    assert r.rules["ifa"].step.counts == r.rules["ifa:45"].step.counts
    assert r.rules["ifa"].init.counts == r.rules["ifa:45"].init.counts


def test_energy_is_priced_from_counts():
    work = toy_workload()
    r = simulate(work, TOY, "bp").rules["bp"]  # toy chip: mirror mode
    e = r.step.energy
    # The total, derived independently: every access priced from the chip file itself (read and
    # transport at the level's read energy, writes at its write energy), plus interconnect bits,
    # MACs and leakage at the toy's round numbers.
    levels = yaml.safe_load((DATA / "toy_chip.yaml").read_text())["memories"]
    memory_pj = sum(
        c.accesses * levels[level]["write_energy_pj" if direction == "write" else "read_energy_pj"]
        for (level, _, _, direction), c in r.step.counts.accesses.items()
    )
    leakage_pj = r.latency_cycles / 1e6 * 1e-3 * 1e12  # 1 mW for cycles / 1 MHz seconds
    assert e.total_pj == pytest.approx(memory_pj + 48 * 0.5 + 172 * 0.25 + leakage_pj)
    # memory: Σ accesses × per-access energy, read priced at read energy, write at write
    assert e.by_access_pj[("wmem", "weights", "forward", "read")] == 24 * 2.0
    assert e.by_access_pj[("fbmem", "weight_mirror", "update", "write")] == 3 * 3.0
    assert e.breakdown_pj["interconnect"] == 48 * 0.5
    # all MACs have 8-bit operands (0.25 pJ) except the update, priced at 8-bit state/grads too
    assert e.breakdown_pj["compute"] == 172 * 0.25
    # leakage: 1 mW (wmem) over the step
    assert e.breakdown_pj["leakage"] == pytest.approx(r.latency_cycles / 1e6 * 1e9)
    # memory by level, from the chip file: reads and transports of a level at its read energy
    by_level: dict[str, float] = {}
    for (level, _, _, direction), c in r.step.counts.accesses.items():
        key = "write_energy_pj" if direction == "write" else "read_energy_pj"
        by_level[level] = by_level.get(level, 0.0) + c.accesses * levels[level][key]
    assert e.memory_by_level_pj == pytest.approx(by_level)


def test_spilling_happens_exactly_when_a_tensor_outgrows_its_level():
    # wmem holds 512 bits; weights need 120 + 64 = 184 bits at 8-bit.
    def placement(bits: int) -> dict:
        work = toy_workload(weight_bits=bits)
        return make_plan(work, TOY, parse_rule("fa"), 3).placement

    # 21 bits: 15×21 = 315 and 8×21 = 168 → 483 ≤ 512: both fit
    assert placement(21)[("weights", 0)] == "wmem" and placement(21)[("weights", 1)] == "wmem"
    # 22 bits: 330 fits, 330 + 176 = 506 still fits
    assert placement(22)[("weights", 1)] == "wmem"
    # 23 bits: 345 fits, 345 + 184 = 529 > 512: layer 1 spills to the next level outward
    assert placement(23)[("weights", 0)] == "wmem"
    assert placement(23)[("weights", 1)] == "fbmem"


def test_spilling_skips_rom_and_fails_when_nothing_fits():
    rf, wmem, fbmem, rom, buf, _ = TOY.memories
    tight = dataclasses.replace(TOY, memories=(rf, wmem, rom, fbmem, buf))
    work = toy_workload(weight_bits=32)  # layer 0: 480 bits, layer 1: 256 bits
    plan = make_plan(work, tight, parse_rule("fa"), 3)
    assert plan.placement[("weights", 0)] == "wmem"
    assert plan.placement[("weights", 1)] == "fbmem"  # past the ROM, which holds only B
    # the error points at the chip file, the key and its line
    where = f"{DATA / 'toy_chip.yaml'}:59: placement.weights: "
    with pytest.raises(
        InputError,
        match=re.escape(where + "weights of layer 'fc1' (3000 bits) fit in neither"),
    ):
        make_plan(toy_workload(weight_bits=200), tight, parse_rule("fa"), 3)


def test_auto_reuse_is_set_by_the_innermost_level_per_layer_and_phase():
    rf = dataclasses.replace(TOY.memories[0], size_bytes=17)
    auto = dataclasses.replace(TOY, samples_per_weight_fetch=None, memories=(rf, *TOY.memories[1:]))
    work = toy_workload(batch_size=5)
    plan = make_plan(work, auto, parse_rule("bp"), 5)

    # rf holds 136 bits. Walking the whole tensor per group, layer 0 streams (4 in + 3 out) × 8
    # = 56 bits per sample → 2 samples fit: groups 2 + 2 + 1. Layer 1 streams (3 + 2) × 8 = 40
    # bits → 3 samples: 3 + 2. Backward of layer 1: e_out 2 + e_in 3, × 8 → 3 + 2.
    def largest_whole(phase, i):
        walks, _ = candidate_walks(work, auto, plan, phase, i)
        whole = [w for w in walks if w.tile_count == 1]
        return max(whole, key=lambda w: w.groups[0][0]).groups

    for phase in ("forward", "gradient"):
        assert largest_whole(phase, 0) == ((2, 2), (1, 1))
        assert largest_whole(phase, 1) == ((3, 1), (2, 1))
    assert largest_whole("backward", 1) == ((3, 1), (2, 1))
    # A group of all 5 samples fits only with W in blocks streamed past the outputs it keeps
    # (blocks of 2 rows: 5 × (2 outputs + 1 input in flight) × 8 + the block's 2 weights that
    # meet that input, 16 = 136 bits). Layer 0's forward
    # pass by hand (wmem 16-bit words 2 pJ; buf 32-bit words, 4 pJ read, 5 write):
    #  groups 2 + 2 + 1: W 3 × 8 words, x 2 + 2 + 1 words, y 2 + 2 + 1: 48 + 20 + 25 = 93 pJ
    #  one group, blocks of 2 + 1 rows: W 5 + 3 words, x 5 words per block, y 3 + 2 words:
    #    16 + 40 + 25 = 81 pJ
    # and the mapper takes the cheaper, or something cheaper still.
    walk = plan.walks[("forward", 0)]
    chosen = walk_counts(work, auto, plan, "forward", 0, walk)
    pj = sum(
        a.accesses * auto.memory(k[0]).access_energy_pj(k[3]) for k, a in chosen.accesses.items()
    )
    blocks = batch_outer(5, 5, work.layers[0], size=2, by="row")
    by_hand = walk_counts(work, auto, plan, "forward", 0, blocks)
    assert (
        sum(
            a.accesses * auto.memory(k[0]).access_energy_pj(k[3])
            for k, a in by_hand.accesses.items()
        )
        == 81
    )
    assert pj <= 81


def test_run_totals_price_the_partial_batch():
    doc = build_workload("mlp:4-3-2", batch_size=3)
    doc["batches"] = [{"batch_size": 3, "count": 4}, {"batch_size": 1, "count": 1}]
    doc["epochs"] = 2
    r = simulate(doc, TOY, "ifa").rules["ifa"]
    full, last = r.steps_by_batch_size[3], r.steps_by_batch_size[1]
    rt = r.run_totals
    assert rt.steps == 10 and rt.epochs == 2
    epoch_macs = 4 * full.counts.total_macs + last.counts.total_macs
    assert rt.macs == 2 * epoch_macs
    assert rt.latency_cycles == 2 * (4 * full.latency_cycles + last.latency_cycles) + (
        r.init.latency_cycles
    )
    expected = 2 * (4 * full.energy.total_pj + last.energy.total_pj) + r.init.energy.total_pj
    assert rt.energy.total_pj == pytest.approx(expected)
    assert last.counts.macs_by_phase()["forward"] == 18  # one sample


def test_layer0_has_no_mirror_and_no_feedback_matrix():
    """MLP 784-256-256-10 at 8 bits, batch 32, on dfa_prng (BP in mirror mode).

    Only layers 1 and 2 send errors down, so BP re-synchronizes (256·256 + 10·256) weights ×
    8 bits = 544,768 bits per step, not the 2,150,400 that would include layer 0's 784·256; and
    IFA's one-time B = W₀ copy moves the same 544,768 bits.
    """
    result = simulate(
        workload_from_dict(build_workload("mlp:784-256-256-10", batch_size=32)),
        load_chip(CHIPS_DIR / "dfa_prng.yaml"),
        "bp,ifa",
    )
    bp, ifa = result.rules["bp"], result.rules["ifa"]
    assert bp.sync_write_bits == (256 * 256 + 10 * 256) * 8 == 544_768
    assert bp.init.counts.total_interconnect_bits == 544_768
    assert "fc1" not in bp.placement["weight_mirror"]
    assert ifa.init.counts.total_interconnect_bits == 544_768


def test_freed_room_keeps_the_mirror_on_chip():
    """MLP 784-1024-1024-10 on dfa_prng: the 1 MB mirror SRAM holds layer 1's 1024·1024 bytes
    exactly; with no layer-0 mirror taking 784·1024 bytes of it first, layer 1's mirror stays
    on chip (only layer 2's small one moves outward)."""
    bp = simulate("mlp:784-1024-1024-10", load_chip(CHIPS_DIR / "dfa_prng.yaml"), "bp").rules["bp"]
    assert bp.placement["weight_mirror"]["fc2"] == "mirror_sram"
    assert bp.placement["weight_mirror"]["fc3"] != "dram"


def test_a_chip_that_fits_only_in_the_class_order_keeps_that_placement():
    """buf 248 bits, then big 456 bits, nothing outward; buf's tensors need exactly 704 bits.
    The class order packs them (state 120 + 64 and ΔW of layer 1 in buf; the rest in big); the
    traffic order puts ΔW (120, 64) and layer 1's errors (48) in buf, leaving 16 bits there and,
    after layer 1's activations and the state, 56 bits in big: layer 0's errors (72) fit
    nowhere. The chip still trains, so the placement that fits is kept."""
    buf = dataclasses.replace(TOY.memory("buf"), size_bytes=31)
    big = dataclasses.replace(TOY.memory("buf"), name="big", size_bytes=57)
    tight = dataclasses.replace(TOY, memories=(TOY.memory("wmem"), TOY.memory("fbmem"), buf, big))
    plan = make_plan(toy_workload(), tight, parse_rule("fa"), 3)
    in_buf = {key for key, level in plan.placement.items() if level == "buf"}
    assert in_buf == {("optimizer_state", 0), ("optimizer_state", 1), ("gradients", 1)}
    assert plan.placement[("errors", 0)] == "big"
