"""Stored-number regression tests for the shipped chips, on the default workload.

The default workload is the project's MLP 784-256×5-10 with 8-bit weights, batch 64.
If a number here changes, a chip file or the cost model changed: check why before updating.
"""

from __future__ import annotations

import pytest

from hwsim.core.resources import CHIPS_DIR, DEFAULT_CHIP
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip

CHIPS = CHIPS_DIR
DEFAULT_MODEL = "mlp:784-256-256-256-256-256-10"

# rule → (energy per step pJ, latency cycles, transport bits, sync bits, feedback read bits,
#         init interconnect bits). Regenerated with loop orders (issue 9, item 3): every phase now
#         takes the cheaper of batch_outer and weight_outer per layer; on this MLP that is
#         weight_outer everywhere, so W, B and BP's transport move once per step instead of once
#         per fetch group (transport 21.2 → 2.1 Mbit on edge_sram) and ΔW is accumulated on chip
#         and written once. Whole-batch walks cannot pipeline with the next unit, so some
#         latencies grew (dfa_prng BP 1,020,844 → 1,170,947 cycles). split_cores is new: BP's
#         sync goes through DRAM (written there and into the mirror: 2 × 2,117,632 bits).
#         Then with MACs priced by number format (item 4): this model-spec workload is int8
#         throughout, so only the update MACs moved, from the int32 entry to int16 (16-bit ΔW
#         and momentum on edge_sram, split_cores and dfa_prng: 3.2 → 0.83 pJ).
#         Then every rule (issue 12): df_lnpu is new; split_cores also pins the new rules. By
#         hand: uSF carries 1 bit per weight of layers 1-5 (4 × 65,536 + 2,560 = 264,704 bits),
#         through DRAM on split_cores (2 × 264,704); frSF reads 7-bit magnitudes (264,704 × 7);
#         DFA reads D_l = 10 × 256 per layer at 8 bits (5 × 20,480); KP reads all of B.
#         Then (issue 22): split_cores stages IFA's one-time copy B = W₀ through DRAM, as BP's
#         first mirror copy, so its init crosses the link twice (2,117,632 → 4,235,264 bits; the
#         step is unchanged). rram_cim is new here: BP's transposed error pass activates only
#         the arrays holding input rows (not those of the bias row alone: 99 → 66 arrays per
#         vector, 10,983,075.84 → 7,322,050.56 pJ) and converts each row once per cell
#         significance (4 cells per weight: 3 × 128 more conversions per pass, +5,449,973.76
#         pJ, 4 activation times per vector): BP 192,496,611.401 → 194,331,894.862 pJ (+0.95%),
#         852,319 → 867,978 cycles; FA, IFA and DFA unchanged.
#         Then the mapper (issue 22): placement and loop nests chosen together, exactly, at
#         least energy; every loop nest's working set must fit the register file (the old
#         weight_outer tiles filled it alone); and new loop nests: blocks of W streamed past a
#         group's outputs held in the register file (output-stationary over the batch), or
#         past its inputs held there; spatial tiles of convolutions. On the SRAM chips the
#         output-stationary blocks read each input 3× instead of once per 28-row tile (9×):
#         energy −3.2% (dfa_prng FA) to −22.0% (split_cores DFA), latency −35% to −40%
#         (fewer, larger transfers); on the DRAM chips, where W streams from DRAM anyway, +0.02%
#         to +0.08% (tiles that now leave room for the streamed slices). Small tensors move to
#         the cheaper 256 KB act_sram where it has room. rram_cim's numbers follow the same
#         search for its digital levels.
#         Then the MAC arrays (issue 22): every unit computes on a rows × cols array fed by the
#         register file (16 × 16 for 256 MACs per cycle), each fetch weight- or output-
#         stationary, whichever feeds it for less. The operands it reads there and the 32-bit
#         sums it writes back are priced at the register file (edge_sram FA 93.37 → 103.74 µJ,
#         +11%: 10.25 µJ of operands), and the array's idle elements on partial blocks cost
#         cycles (672,955 → 701,968). BP − FA is unchanged where BP carries W (edge_sram
#         0.09 µJ); transport and sync bits are unchanged everywhere.
STORED = {
    "df_lnpu": {
        "bp": (413473195.748, 722792, 2117632, 0, 0, 0),
        "fa": (392612534.392, 740224, 0, 0, 0, 0),
        "ifa": (392612534.392, 740224, 0, 0, 0, 2117632),
        "dfa": (383632703.678, 626772, 0, 0, 0, 0),
        "usf": (410556325.33199996, 709128, 264704, 0, 0, 0),
        "brsf": (411314612.14399993, 717328, 264704, 0, 0, 0),
        "frsf": (411314612.14399993, 717328, 264704, 0, 0, 0),
    },
    "dfa_prng": {
        "bp": (670062099.7559999, 768244, 0, 2117632, 0, 2117632),
        "fa": (661505791.1165, 762011, 0, 0, 0, 0),
        "ifa": (661505791.1165, 762011, 0, 0, 0, 2117632),
    },
    "dram_accel": {
        "bp": (639274683.0799999, 536700, 2117632, 0, 0, 0),
        "fa": (638807889.6004, 528402, 0, 0, 2117632, 0),
        "ifa": (638807889.6004, 528402, 0, 0, 2117632, 2117632),
    },
    "dram_prng": {
        "bp": (639274683.0799999, 536700, 2117632, 0, 0, 0),
        "fa": (619622621.4258001, 547779, 0, 0, 0, 0),
        "ifa": (619622621.4258001, 547779, 0, 0, 0, 2117632),
    },
    "edge_sram": {
        "bp": (103830341.1015, 722111, 2117632, 0, 0, 0),
        "fa": (103736548.34200001, 701968, 0, 0, 2117632, 0),
        "ifa": (103736548.34200001, 701968, 0, 0, 2117632, 2117632),
    },
    "rram_cim": {
        "bp": (187005100.681, 657299, 0, 0, 0, 0),
        "fa": (182164111.908, 638152, 0, 0, 10567680, 0),
        "ifa": (182164111.908, 638152, 0, 0, 10567680, 2117632),
        "dfa": (178189776.512, 630188, 0, 0, 409600, 0),
    },
    "split_cores": {
        "bp": (193675368.8905, 734937, 0, 4235264, 0, 4235264),
        "fa": (103736548.342, 701968, 0, 0, 2117632, 0),
        "ifa": (103736548.342, 701968, 0, 0, 2117632, 4235264),
        "dfa": (92764172.74700001, 606778, 0, 0, 102400, 0),
        "usf": (110391467.53350002, 654239, 0, 529408, 0, 529408),
        "brsf": (117490418.927, 734338, 0, 529408, 1852928, 529408),
        "frsf": (114863822.125, 702270, 0, 529408, 1852928, 529408),
        "kp": (111621068.86649999, 802281, 0, 0, 2117632, 0),
    },
}


@pytest.mark.parametrize("name", sorted(STORED))
def test_shipped_chip_numbers(name):
    result = simulate(DEFAULT_MODEL, CHIPS / f"{name}.yaml", list(STORED[name]))
    for spec, expected in STORED[name].items():
        r = result.rules[spec]
        got = (
            r.energy_pj,
            r.latency_cycles,
            r.weight_transport_bits,
            r.sync_write_bits,
            r.feedback_read_bits,
            r.init.counts.total_interconnect_bits,
        )
        assert got[1:] == expected[1:], spec
        assert got[0] == pytest.approx(expected[0], rel=1e-12), spec


def test_every_shipped_chip_validates_and_cites_its_numbers():
    files = sorted(CHIPS.glob("*.yaml"))
    assert {f.stem for f in files} >= set(STORED)
    for f in files:
        chip = load_chip(f)
        assert f.read_text().startswith(f"# {chip.name} —")
        assert all(level.source for level in chip.memories), f
        assert chip.interconnect.source, f


def test_default_chip_holds_the_default_workload_in_sram():
    assert DEFAULT_CHIP == CHIPS / "edge_sram.yaml"
    chip = load_chip(DEFAULT_CHIP)
    kinds = {m.name: m.kind for m in chip.memories}
    for spec, r in simulate(DEFAULT_MODEL, DEFAULT_CHIP, "bp,fa,ifa").rules.items():
        for tensor in ("weights", "feedback_weights"):
            for level in r.placement.get(tensor, {}).values():
                assert kinds[level] == "sram", (spec, tensor, level)
        assert all(kinds[lv] != "dram" for levels in r.placement.values() for lv in levels.values())


def test_prng_chip_removes_feedback_storage_and_memory_traffic():
    r = simulate(DEFAULT_MODEL, CHIPS / "dfa_prng.yaml", "fa").rules["fa"]
    assert "feedback_weights" not in r.placement
    assert r.step.counts.total_generated_values > 0
    assert r.step.energy.breakdown_pj["feedback_generation"] == pytest.approx(
        r.step.counts.total_generated_values * 0.03
    )


def test_split_cores_bp_pays_its_sync_through_dram():
    """BP − FA on split_cores is the synchronization through DRAM, worked out by hand.

    Mirrored weights: layers 1-4 256 × 256 × 8 = 524,288 bits (8,192 words of 64 bits, 2,048
    DRAM bursts of 4 words) and layer 5 10 × 256 × 8 = 20,480 bits (320 words, 80 bursts).
    Per step: DRAM write + read of 4 × 2,048 + 80 = 8,272 bursts each at 5,200 pJ =
    86,028,800 pJ; mirror writes: layers 1-4 in err_weight_sram, 4 × 8,192 words at 86.5 pJ =
    2,834,432 pJ, and layer 5, which the mapper keeps in act_sram beside the error unit (room
    to spare, 43.9 pJ per write), 320 × 43.9 = 14,048 pJ; both legs over the interconnect 2 ×
    2,117,632 bits × 0.22 pJ = 931,758.08 pJ. Total 89,809,038.08 pJ. BP's mirror reads and
    FA's B reads are the same bits from equal SRAMs.
    """
    result = simulate(DEFAULT_MODEL, CHIPS / "split_cores.yaml", "bp,fa")
    gap = result.gaps_to_bp["fa"].energy
    assert gap.causes_pj["mirror_sync"] == pytest.approx(89_809_038.08, rel=1e-12)
    assert gap.causes_pj["mirror_reads"] == -gap.causes_pj["feedback_reads"]
    assert gap.leading_cause == "mirror_sync"
    assert result.rules["bp"].sync_write_bits == 2 * 2_117_632


def test_rram_cim_bp_error_pass_by_hand():
    """BP's error pass on rram_cim: W's own 128 × 128 arrays read transposed, worked out by hand.

    Layers 1-4 (256 inputs + a bias row, 256 outputs × 4 cells of 2 bits): the 256 input rows
    fill ⌈256/128⌉ = 2 rows of arrays, the bias row alone a third that the error pass leaves
    idle; 1,024 columns are 8 arrays wide: 16 arrays. Layer 5 (10 outputs × 4 = 40 columns):
    2 arrays. 4 × 16 + 2 = 66 passes per vector, 64 samples × 8 one-bit slices = 512 vectors:
    33,792 passes of 113 + 128 × 0.42 (row ADCs) + 128 × 0.39 (column DACs) = 216.68 pJ =
    7,322,050.56 pJ (with the bias arrays, 99 passes: 10,983,075.84 pJ). Each pass drives the
    4 cell significances apart: 3 × 128 more conversions, 12,976,128 × 0.42 = 5,449,973.76 pJ.
    """
    r = simulate(DEFAULT_MODEL, CHIPS / "rram_cim.yaml", "bp").rules["bp"]
    counts, priced = r.step.counts.accesses, r.step.energy.by_access_pj
    key = ("w_cim", "weights", "backward", "mvm_transposed")
    assert counts[key].accesses == 33_792
    assert priced[key] == pytest.approx(7_322_050.56, rel=1e-12)
    key = ("w_cim", "weights", "backward", "convert")
    assert counts[key].accesses == 12_976_128
    assert priced[key] == pytest.approx(5_449_973.76, rel=1e-12)
