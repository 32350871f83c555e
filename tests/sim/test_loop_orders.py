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
    # rf 128 bits. A tile of s rows holds its weights (a row of layer 0 with its bias: 40 bits),
    # one sample's inputs (4 × 8 = 32 bits) and the tile's outputs of that sample (8 bits each):
    # layer 0, s = 2: 80 + 32 + 16 = 128 fits, s = 3: 176 does not → tiles of 2 + 1 rows.
    # Layer 1 (32-bit rows, 3 inputs): s = 2: 64 + 24 + 16 = 104 → one tile. The whole batch
    # (3 samples) streams through each tile.
    chip = with_rf(128, loop_order="weight_outer")
    r = simulate(toy_workload(), chip, "bp").rules["bp"]
    c = r.step.counts.accesses
    # W (wmem, 16-bit words): layer 0 tiles of 80 and 40 bits (5 + 3 words), layer 1 one tile
    # of 64 bits (4 words)
    assert c[("wmem", "weights", "forward", "read")] == A(80 + 40 + 64, 5 + 3 + 4, 5 + 3 + 4)
    # x (buf, 32-bit words): layer 0 re-reads 3 samples × 4 × 8 = 96 bits (3 words) per tile,
    # 2 tiles; layer 1 reads 3 × 3 × 8 = 72 bits (3 words) once
    assert c[("buf", "activations", "forward", "read")] == A(192 + 72, 6 + 3, 6 + 3)
    # y: layer 0 writes 3 samples × 2 rows × 8 = 48 bits (2 words), then 24 (1); logits 48 (2)
    assert c[("buf", "activations", "forward", "write")] == A(48 + 24 + 48, 2 + 1 + 2, 2 + 1 + 2)
    assert r.loop_orders["fc1"]["forward"].startswith("weight_outer: 2 tile(s)")


def test_auto_takes_the_cheapest_gradient_order_and_never_reads_dw_back():
    # rf 112 bits, ΔW 8-bit, samples_per_weight_fetch 2 (batch_outer groups 2 + 1). Layer 0
    # (ΔW 3 rows × 4 columns + 3 biases), what each walk keeps in rf and costs in buf:
    #  batch_outer: 2 samples' x and e, 2 × (4 + 3) × 8 = 112 bits. x 64 + 32 bits (2 + 1
    #    words), e 48 + 24 (2 + 1), ΔW 120 bits (4 words) written twice, read back once:
    #    (3 + 3 + 4) reads × 4 pJ + 8 writes × 5 pJ = 80 pJ
    #  weight_outer, tiles of 1 row: the 40-bit row, one sample's x (32) and its output (8) =
    #    80 bits (2 rows: 128, too many). x 96 bits (3 words) per tile, e 24 (1 word) per
    #    tile, ΔW 40 bits (2 words) written once per tile: (9 + 3) × 4 + 6 × 5 = 78
    #  weight_outer, tiles of 1 column (3 × 8 bits with the 3 biases: 48) + 1 input (8) + 3
    #    errors (24) = 80 bits: e 72 bits (3 words) per tile, x 24 bits (1), ΔW 24 bits (1
    #    word; the last, 48 with the biases: 2): (12 + 4) × 4 + 5 × 5 = 89
    #  weight_outer, tiles of 2 columns: 3 × (16 + 8) + 16 + 24 = 112 bits fits: e 72 bits (3
    #    words) per tile, x 48 (2), ΔW 48 bits (2 words), the last 72 with the biases (3):
    #    (6 + 4) × 4 + 5 × 5 = 65
    # → weight_outer by 2 columns. Layer 1 (one tile of all of ΔW fits: 2 × (24 + 8) + 24 + 16
    # = 104 bits; 30 pJ against batch_outer's 48) → weight_outer, one tile.
    chip = with_rf(112)
    work = toy_workload()
    plan = make_plan(work, chip, parse_rule("fa"), 3)
    layer = work.layers[0]
    candidates = [
        batch_outer(3, 2, layer),
        weight_outer(3, layer, 1, "row"),
        weight_outer(3, layer, 1, "column"),
        weight_outer(3, layer, 2, "column"),
    ]
    costs = []
    for walk in candidates:
        counts = walk_counts(work, chip, plan, "gradient", 0, walk)
        costs.append(
            sum(a.accesses * (5 if k[3] == "write" else 4) for k, a in counts.accesses.items())
        )
    assert costs == [80, 78, 89, 65]
    assert [w.tile_count for w in candidates] == [1, 3, 4, 2]
    assert plan.walks[("gradient", 0)].tiles == candidates[3].tiles
    assert plan.walks[("gradient", 1)].order == "weight_outer"
    assert plan.walks[("gradient", 1)].tile_count == 1
    c = count_step(work, chip, plan).accesses
    # ΔW written once per tile and never read back in the gradient phase: layer 0 48 + 72
    # bits (2 + 3 words), layer 1 64 bits (2 words)
    assert c[("buf", "gradients", "gradient", "write")] == A(120 + 64, 5 + 2, 5 + 2)
    assert ("buf", "gradients", "gradient", "read") not in c
    # x: 2 tiles × 48 bits for layer 0, 72 for layer 1; e: 2 tiles × 72 + 48
    assert c[("buf", "activations", "gradient", "read")] == A(96 + 72, 4 + 3, 4 + 3)
    assert c[("buf", "errors", "gradient", "read")] == A(144 + 48, 6 + 2, 6 + 2)
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


def test_cnn_forward_tiles_the_image_when_one_sample_does_not_fit():
    # conv1: 1 → 2 channels, 3×3 kernel, stride 1, 4×4 image; rf 232 bits; batch 2; buf 4 pJ
    # per read, 5 per write (32-bit words), wmem 2 pJ (16-bit words). Whole samples: x 16 × 8
    # + y 32 × 8 = 384 bits, too many. A spatial tile of h output rows reads the input rows its
    # kernel spans (h = 1: 3 rows, 12 inputs; h = 2: all 4, 16) and writes h × 4 outputs per
    # channel, into dram (the toy pins every class; buf fills before conv2's inputs reach it:
    # 64-bit words, 100 pJ per burst of 2). What fits, one sample at a time:
    #  A  h = 1, both channels: 96 + 64 = 160 bits. 8 fetches: W 144 bits (9 words), x 96 (3),
    #     y 64 (1 word, 1 burst) each: 72 × 2 + 24 × 4 + 8 × 100 = 1040 pJ
    #  B  h = 2, W in blocks of one output channel: 128 + 64 = 192 bits. 8 fetches: W 72 bits
    #     (5 words), x 128 (4), y 64 (1): 40 × 2 + 32 × 4 + 8 × 100 = 1008 pJ
    #  B' as B, but the inputs of each spatial tile stay in rf while both channel blocks pass
    #     (192 bits all the same): x read once per spatial tile, 4 × 128 bits (4 words):
    #     40 × 2 + 16 × 4 + 8 × 100 = 944 pJ
    #  C  weight_outer, tiles of one channel (72 bits) beside 3 input lines (96) and one output
    #     line (32): 200 bits. W once (2 × 5 words), both images per tile (2 × 8 words), y of
    #     both samples per tile (256 bits, 2 bursts): 10 × 2 + 16 × 4 + 4 × 100 = 484 pJ
    # Forced to walk the batch outside, the mapper takes B'; free, C.
    chip = with_rf(232, samples_per_weight_fetch=None, loop_order="batch_outer")
    work = workload_from_dict(_two_conv_workload(2))
    plan = make_plan(work, chip, parse_rule("bp"), 2)
    walk = plan.walks[("forward", 0)]
    assert (walk.order, walk.groups, walk.tile_count) == ("batch_outer", ((1, 2),), 4)
    assert walk.working_bits == 192
    counts = walk_counts(work, chip, plan, "forward", 0, walk).accesses
    assert counts[("wmem", "weights", "forward", "read")] == A(8 * 72, 40, 40)
    assert counts[("buf", "activations", "forward", "read")] == A(4 * 128, 16, 16)
    assert [t.resident for t, count in walk.tiles for _ in range(count)] == [False, True] * 2
    assert counts[("dram", "activations", "forward", "write")] == A(8 * 64, 8, 8)
    free = with_rf(232, samples_per_weight_fetch=None, loop_order="auto")
    plan = make_plan(work, free, parse_rule("bp"), 2)
    walk = plan.walks[("forward", 0)]
    assert (walk.order, walk.tile_count, walk.working_bits) == ("weight_outer", 2, 200)
    counts = walk_counts(work, free, plan, "forward", 0, walk).accesses
    assert counts[("wmem", "weights", "forward", "read")] == A(144, 10, 10)
    assert counts[("buf", "activations", "forward", "read")] == A(512, 16, 16)
    assert counts[("dram", "activations", "forward", "write")] == A(512, 8, 4)
    # with rf 512 bits a tile of both output channels (144 bits) fits beside the lines
    # (96 + 2 × 32 = 304 bits): weight_outer reads W once and each image once
    roomy = with_rf(512, samples_per_weight_fetch=None, loop_order="auto")
    plan = make_plan(work, roomy, parse_rule("bp"), 2)
    walk = plan.walks[("forward", 0)]
    assert (walk.order, walk.tile_count) == ("weight_outer", 1)
    counts = walk_counts(work, roomy, plan, "forward", 0, walk).accesses
    assert counts[("wmem", "weights", "forward", "read")] == A(144, 9, 9)
    assert counts[("buf", "activations", "forward", "read")] == A(256, 8, 8)
    # and the SimPy replay still equals the closed form, for batch 2 and a partial batch of 3
    for n in (2, 3):
        w = workload_from_dict(_two_conv_workload(n))
        for the_chip in (chip, free, roomy):
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
    # MLP 4-3-3-2 (three weight layers), FA with B in fbmem (16-bit words), rf 88 bits, forced
    # weight_outer; batches of 2 samples and a last one of 1. The backward pass tiles B by whole
    # columns; a tile of s columns keeps them, the error it sends down (s × 8 bits) and one
    # sample's incoming error (all rows): layer 1, 3 rows: 24s + 8s + 24 → s = 2 (88 bits),
    # tiles of 2 + 1 columns; layer 2, 2 rows: 16s + 8s + 16 → all 3 columns (88). Each tile reads
    # the incoming error e_out of every sample (all rows) and writes the error sent down for its
    # own columns. Per batch of n samples (buf: 32-bit words):
    #   layer 1: B tiles 48 + 24 bits (3 + 2 words); e_out n·3·8 bits per tile, twice;
    #            e_in n·2·8 then n·1·8 bits
    #   layer 2: B 48 bits (3 words); e_out n·2·8 bits; e_in n·3·8 bits
    #   the loss writes the top error n·2·8 bits (one group: the top forward walk is whole-batch)
    doc = build_workload("mlp:4-3-3-2", batch_size=2)
    doc["batches"] = [{"batch_size": 2, "count": 2}, {"batch_size": 1, "count": 1}]
    doc["epochs"] = 1
    chip = with_rf(88, loop_order="weight_outer")
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
