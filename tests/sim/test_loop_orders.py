"""Loop orders, fused updates and mirror synchronization, counted by hand on toy chips.

Toy chip (data/toy_chip.yaml): wmem 16-bit words (read 2 pJ), buf 32-bit words (read 4 pJ,
write 5 pJ), dram 64-bit words in bursts of 2, interconnect 0.5 pJ/bit. Network MLP 4-3-2 with
biases, 8-bit everything, batch 3, SGD+momentum; ΔW and state 8-bit. Layer 0: W 3×4 + 3 biases
(a row of W with its bias: 5 × 8 = 40 bits); layer 1: W 2×3 + 2 biases (row: 32 bits).
Every count below is (bits, words, accesses); a fetch rounds its own words up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import MemoryLevel, load_chip
from hwsim.sim.counting import AccessCount, count_step, walk_counts
from hwsim.sim.loops import batch_outer, weight_outer
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.simulation import simulate_step

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")
A = AccessCount


def toy_workload(batch_size: int = 3):
    return workload_from_dict(build_workload("mlp:4-3-2", batch_size=batch_size))


def with_rf(bits: int, **training) -> object:
    """The toy chip with a register file (the tile buffer) of ``bits``."""
    rf = TOY.memories[0]
    assert rf.name == "rf"
    small: MemoryLevel = dataclasses.replace(rf, size_bytes=bits // 8)
    training = {"loop_order": "auto", **training}
    return dataclasses.replace(TOY, memories=(small, *TOY.memories[1:]), **training)


def test_weight_outer_forward_reads_w_once_and_rereads_inputs_per_tile():
    # rf 64 bits. Layer 0: a 40-bit row fits once → 3 tiles of 1 row. Layer 1: 64 // 32 = 2 rows
    # → 1 tile. The whole batch (3 samples) streams through each tile.
    chip = with_rf(64, loop_order="weight_outer")
    r = simulate(toy_workload(), chip, "bp").rules["bp"]
    c = r.step.counts.accesses
    # W: layer 0 three 40-bit tiles (3 words of 16 bits each) + layer 1 one 64-bit tile (4)
    assert c[("wmem", "weights", "forward", "read")] == A(120 + 64, 9 + 4, 9 + 4)
    # x: layer 0 re-reads 3 samples × 4 × 8 = 96 bits (3 words) per tile, 3 tiles; layer 1
    # reads 3 × 3 × 8 = 72 bits (3 words) once
    assert c[("buf", "activations", "forward", "read")] == A(288 + 72, 9 + 3, 9 + 3)
    # y: layer 0 writes each tile's row for 3 samples, 24 bits (1 word) × 3; logits 48 bits (2)
    assert c[("buf", "activations", "forward", "write")] == A(72 + 48, 3 + 2, 3 + 2)
    assert r.loop_orders["fc1"]["forward"].startswith("weight_outer: 3 tile(s)")


def test_auto_takes_the_cheapest_gradient_order_and_never_reads_dw_back():
    # rf 64 bits, ΔW 8-bit, samples_per_weight_fetch 2 (batch_outer groups 2 + 1). Layer 0:
    #  batch_outer: x 64 + 32 bits (2 + 1 words), e 48 + 24 (2 + 1), ΔW 120 bits (4 words)
    #    written twice, read once: (3 + 3 + 4) reads × 4 pJ + 8 writes × 5 pJ = 80 pJ
    #  weight_outer by rows (3 tiles of one 40-bit row): x 96 bits (3 words) per tile, e 24
    #    (1 word) per tile, ΔW 40 bits (2 words) written once per tile: (9 + 3) × 4 + 6 × 5 = 78
    #  weight_outer by columns (48-bit columns with their bias share: 1 column per tile, 4
    #    tiles): e 72 bits (3 words) per tile, x 24 bits (1), ΔW 24 bits (1 word, the last 48
    #    with the biases: 2): (12 + 4) × 4 + 5 × 5 = 89
    # → weight_outer by rows. Layer 1 (one tile either way, 30 pJ against 48) → weight_outer.
    chip = with_rf(64)
    work = toy_workload()
    plan = make_plan(work, chip, parse_rule("fa"), 3)
    layer = work.layers[0]
    candidates = [
        batch_outer(3, 2, layer),
        weight_outer(3, layer, 8, 64, "row", bias=True),
        weight_outer(3, layer, 8, 64, "column", bias=True),
    ]
    costs = []
    for walk in candidates:
        counts = walk_counts(work, chip, plan, "gradient", 0, walk)
        costs.append(
            sum(a.accesses * (5 if k[3] == "write" else 4) for k, a in counts.accesses.items())
        )
    assert costs == [80, 78, 89]
    assert [w.tile_count for w in candidates] == [1, 3, 4]
    assert plan.walks[("gradient", 0)] == candidates[1]
    assert plan.walks[("gradient", 1)].order == "weight_outer"
    c = count_step(work, chip, plan).accesses
    # ΔW written once per tile and never read back in the gradient phase: 3 × 2 + 2 words
    assert c[("buf", "gradients", "gradient", "write")] == A(120 + 64, 6 + 2, 6 + 2)
    assert ("buf", "gradients", "gradient", "read") not in c
    # x: 288 bits for layer 0 (3 tiles × 96), 72 for layer 1; e: 3 × 24 + 48
    assert c[("buf", "activations", "gradient", "read")] == A(288 + 72, 9 + 3, 9 + 3)
    assert c[("buf", "errors", "gradient", "read")] == A(72 + 48, 3 + 2, 3 + 2)
    assert simulate_step(work, chip, plan).counts == count_step(work, chip, plan)


def test_fused_update_applies_every_sample_and_stores_no_gradient():
    # Every sample updates W at once: forward and backward fetch W per sample (3 times), the
    # update reads and writes W and the momentum 3 times, and no ΔW exists anywhere.
    chip = dataclasses.replace(TOY, update="fused")
    r = simulate(toy_workload(), chip, "bp", timeline=True).rules["bp"]
    c = r.step.counts.accesses
    assert "gradients" not in r.placement
    assert not [k for k in c if k[1] == "gradients"]
    # W per sample: layer 0 120 bits (8 words) + layer 1 64 bits (4 words), × 3 samples
    assert c[("wmem", "weights", "forward", "read")] == A(3 * 184, 3 * 12, 3 * 12)
    assert c[("wmem", "weights", "update", "read")] == A(3 * 184, 3 * 12, 3 * 12)
    assert c[("wmem", "weights", "update", "write")] == A(3 * 184, 3 * 12, 3 * 12)
    # momentum, 8-bit, in buf (32-bit words): 120 bits (4 words) + 64 (2), × 3
    assert c[("buf", "optimizer_state", "update", "read")] == A(3 * 184, 3 * 6, 3 * 6)
    # BP mirror (toy default): layer 1's 48-bit W synchronized after every sample
    assert r.sync_write_bits == 3 * 48
    # update MACs: (15 + 8) parameters × (1 + 1 state) = 46 per sample
    assert r.step.counts.macs_by_phase()["update"] == 3 * 46
    # the next sample's forward starts only after the previous sample's updates (both layers)
    events = r.step.timeline
    forward = sorted(e.start_cycle for e in events if e.resource == "forward" and e.layer == 0)
    updates = sorted(e.end_cycle for e in events if e.resource == "update" and e.phase == "update")
    assert len(forward) == 3 and len(updates) == 6
    for k in range(2):
        assert forward[k + 1] >= updates[2 * k + 1]


def test_mirror_synchronized_through_dram_pays_both_legs():
    # BP mirror mode via dram: each update writes layer 1's 48 bits of W to dram (1 word of 64,
    # 1 burst), reads them back (1), then writes the mirror in fbmem (3 words of 16); the
    # interconnect carries both legs, 96 bits. The first copy at init goes the same way.
    chip = dataclasses.replace(TOY, mirror_sync_via="dram")
    r = simulate(toy_workload(), chip, "bp").rules["bp"]
    c = r.step.counts.accesses
    assert c[("dram", "weight_mirror", "update", "write")] == A(48, 1, 1)
    assert c[("dram", "weight_mirror", "update", "read")] == A(48, 1, 1)
    assert c[("fbmem", "weight_mirror", "update", "write")] == A(48, 3, 3)
    assert r.step.counts.interconnect_bits[("weight_mirror", "update")] == 96
    init = r.init.counts.accesses
    assert init[("dram", "weight_mirror", "init", "write")] == A(48, 1, 1)
    assert init[("fbmem", "weight_mirror", "init", "write")] == A(48, 3, 3)
    # dram is priced: 100 pJ per access, two accesses per step more than a direct sync
    direct = simulate(toy_workload(), TOY, "bp").rules["bp"]
    extra = r.step.energy.memory_by_level_pj["dram"] - direct.step.energy.memory_by_level_pj.get(
        "dram", 0.0
    )
    assert extra == 200
    assert (
        r.step.energy.breakdown_pj["interconnect"] - direct.step.energy.breakdown_pj["interconnect"]
        == 48 * 0.5
    )


def _two_conv_workload(batch_size: int) -> dict:
    """conv 1→2 channels, 3×3, padding 1 on a 4×4 image, then conv 2→2 likewise; no biases."""
    doc = build_workload("mlp:16-32-32", batch_size=batch_size)

    base = doc["layers"][0]  # bit widths and number formats of the model-spec default (8-bit)

    def conv(name: str, cin: int) -> dict:
        return {
            **base,
            "name": name,
            "kind": "conv2d",
            "weight_shape": [2, cin, 3, 3],
            "bias": False,
            "input_shape": [cin, 4, 4],
            "output_shape": [2, 4, 4],
            "stride": [1, 1],
            "padding": [1, 1],
            "groups": 1,
            "macs_per_sample": 2 * 16 * cin * 9,
        }

    doc["layers"] = [conv("conv1", 1), conv("conv2", 2)]
    doc["input_shape"] = [1, 4, 4]
    return doc


def test_cnn_forward_keeps_batch_outer_where_rereading_images_costs_more():
    # conv1: W 2 × 1 × 9 × 8 bits = 144 bits (a row, one output channel: 72 bits). rf 128 bits.
    # Auto reuse: one sample streams (16 in + 32 out) × 8 = 384 bits > 128 → 1 sample per fetch.
    #  batch_outer, 2 samples: W 144 bits (9 words) × 2 = 18 wmem reads × 2 pJ = 36 pJ;
    #    x 128 bits (4 buf words) per sample = 8 reads × 4 pJ = 32 pJ → 68 pJ (+ y, same below)
    #  weight_outer: 2 tiles of one 72-bit row (5 words): 10 reads = 20 pJ; x of both samples
    #    (256 bits, 8 words) per tile = 16 reads = 64 pJ → 84 pJ
    # y is written once either way (2 samples × 32 × 8 = 512 bits; the conv2 inputs lost buf to
    # more accessed tensors and live in dram: 4 words of 64 bits, 2 bursts, per sample or per
    # tile alike). → batch_outer.
    chip = dataclasses.replace(TOY, samples_per_weight_fetch=None, loop_order="auto")
    work = workload_from_dict(_two_conv_workload(2))
    plan = make_plan(work, chip, parse_rule("bp"), 2)
    walk = plan.walks[("forward", 0)]
    assert (walk.order, walk.groups) == ("batch_outer", ((1, 2),))
    counts = walk_counts(work, chip, plan, "forward", 0, walk).accesses
    assert counts[("wmem", "weights", "forward", "read")] == A(288, 18, 18)
    assert counts[("buf", "activations", "forward", "read")] == A(256, 8, 8)
    assert counts[("dram", "activations", "forward", "write")] == A(512, 8, 4)
    # forced weight_outer: W once in two row tiles, the images re-read once per tile
    forced = dataclasses.replace(chip, loop_order="weight_outer")
    plan = make_plan(work, forced, parse_rule("bp"), 2)
    walk = plan.walks[("forward", 0)]
    assert (walk.order, walk.tile_count) == ("weight_outer", 2)
    counts = walk_counts(work, forced, plan, "forward", 0, walk).accesses
    assert counts[("wmem", "weights", "forward", "read")] == A(144, 10, 10)
    assert counts[("buf", "activations", "forward", "read")] == A(512, 16, 16)
    # each tile writes one channel of both samples: 2 × 16 × 8 = 256 bits. Re-read per tile
    # by conv2 now, the conv2 inputs are among the most accessed bits and win buf: 8 words each
    assert plan.placement[("activations", 1)] == "buf"
    assert counts[("buf", "activations", "forward", "write")] == A(512, 16, 16)
    # and the SimPy replay still equals the closed form, for batch 2 and a partial batch of 3
    for n in (2, 3):
        w = workload_from_dict(_two_conv_workload(n))
        for the_chip in (chip, forced):
            p = make_plan(w, the_chip, parse_rule("bp"), n)
            assert simulate_step(w, the_chip, p).counts == count_step(w, the_chip, p)


def test_more_buffer_never_makes_a_step_dearer_in_memory_traffic():
    # The planner keeps batch_outer among its candidates and picks the cheapest, so growing the
    # tile buffer (more candidates, bigger tiles) can only lower the chosen phases' traffic cost.
    work = toy_workload()
    for rule in ("bp", "fa", "ifa"):
        energies = []
        for bits in (64, 128, 256, 1024):
            chip = with_rf(bits, samples_per_weight_fetch=None, loop_order="auto")
            plan = make_plan(work, chip, parse_rule(rule), 3)
            energies.append(
                sum(
                    a.accesses
                    * (
                        chip.memory(k[0]).write_energy_pj
                        if k[3] == "write"
                        else chip.memory(k[0]).read_energy_pj
                    )
                    for k, a in count_step(work, chip, plan).accesses.items()
                )
            )
        assert energies == sorted(energies, reverse=True), (rule, energies)


def test_weight_outer_backward_tiles_columns_for_a_full_and_a_partial_batch():
    # MLP 4-3-3-2 (three weight layers), FA with B in fbmem (16-bit words), rf 64 bits, forced
    # weight_outer; batches of 2 samples and a last one of 1. The backward pass tiles B by whole
    # columns (a column of layer 1's B: 3 rows × 8 bits = 24 bits → 2 columns per tile, tiles of
    # 2 + 1 columns; layer 2's: 2 × 8 = 16 bits → all 3 columns in one tile). Each tile reads
    # the incoming error e_out of every sample (all rows) and writes the error sent down for its
    # own columns. Per batch of n samples (buf: 32-bit words):
    #   layer 1: B tiles 48 + 24 bits (3 + 2 words); e_out n·3·8 bits per tile, twice;
    #            e_in n·2·8 then n·1·8 bits
    #   layer 2: B 48 bits (3 words); e_out n·2·8 bits; e_in n·3·8 bits
    #   the loss writes the top error n·2·8 bits (one group: the top forward walk is whole-batch)
    doc = build_workload("mlp:4-3-3-2", batch_size=2)
    doc["batches"] = [{"batch_size": 2, "count": 2}, {"batch_size": 1, "count": 1}]
    doc["epochs"] = 1
    chip = with_rf(64, loop_order="weight_outer")
    r = simulate(doc, chip, "fa").rules["fa"]
    expected = {
        # n = 2: e_out 48 + 48 (2 + 2 words) + 32 (1); e_in 32 (1) + 16 (1) + 48 (2); loss 32 (1)
        2: {"b": A(120, 8, 8), "e_read": A(128, 5, 5), "e_write": A(128, 5, 5)},
        # n = 1: e_out 24 + 24 (1 + 1) + 16 (1); e_in 16 (1) + 8 (1) + 24 (1); loss 16 (1)
        1: {"b": A(120, 8, 8), "e_read": A(64, 3, 3), "e_write": A(64, 4, 4)},
    }
    for n, want in expected.items():
        c = r.steps_by_batch_size[n].counts.accesses
        assert c[("fbmem", "feedback_weights", "backward", "read")] == want["b"], n
        assert c[("buf", "errors", "backward", "read")] == want["e_read"], n
        assert c[("buf", "errors", "backward", "write")] == want["e_write"], n
    plan = make_plan(workload_from_dict(doc), chip, parse_rule("fa"), 2)
    walk = plan.walks[("backward", 1)]
    assert (walk.tiled_by, [t.cols for t, count in walk.tiles for _ in range(count)]) == (
        "row",
        [2, 1],
    )
    # the run's totals: two full steps and the partial one (and FA's B written once at init)
    steps = r.run_totals
    assert steps is not None and steps.steps == 3
    assert steps.feedback_read_bits == 3 * 120
