"""The mapper's cache of priced loop nests (hwsim.sim.nest_costs) changes nothing.

A (phase, layer) takes the kept nests of an earlier one whose context (every value its prices
are computed from) is equal. If the context missed an input, two layers or rules that differ
in it would share prices: so the integer program built with the cache warm (every layer,
rule and chip before it cached) must equal, bit for bit, the one built with every (phase,
layer) priced afresh, on workloads whose layers repeat a shape but differ in widths, on chips
of every kind, for rules whose error paths differ.
"""

from __future__ import annotations

import random

import pytest

from hwsim.core.errors import InputError
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim import mapper, mapping_program, nest_costs
from hwsim.sim.api import unsupported_reason
from hwsim.sim.chip import load_chip
from hwsim.sim.loops import Tile, Walk, batch_outer
from hwsim.sim.mapping_program import Cost, Problem
from hwsim.sim.model_specs import build_workload

CHIPS = ("edge_sram", "split_cores", "df_lnpu", "online_edge", "dram_accel", "rram_cim")
#: Variants of edge_sram where layers of one shape price differently. ``pinned``: W pinned in
#: a weight SRAM that holds the first layers' only, the rest in a dearer SRAM (so a layer's
#: placement matters); ``tight``: the top layer's input (with the logits) fits the activation
#: SRAM but not the global buffer, the other layers' inputs both (so the levels a tensor may
#: take matter, where it starts does not).
VARIANTS = {
    "pinned": [
        "training.pinned=[weights, activations]",
        "memories.weight_sram.size_bytes=100000",
        "memories.feedback_sram.read_energy_pj=140",
        "memories.act_sram.size_bytes=20000",
    ],
    "tight": [
        "memories.act_sram.size_bytes=600000",
        "memories.global_buffer.size_bytes=300000",
    ],
    # another MAC array: its side sets the block sizes, its shape and accumulators the
    # operand moves (both must be in the caches' keys)
    "array": [
        "compute.forward.array.rows=32",
        "compute.forward.array.cols=8",
        "compute.error.array.accumulator_bits=16",
        "compute.update.array.cols=32",
        "compute.update.array.rows=8",
    ],
}
RULES = ("bp", "fa", "ifa", "dfa", "usf", "kp")
WIDTHS = ((8, "int8"), (16, "int16"))


def _workloads():
    """An MLP of equal hidden layers whose activation and error widths vary layer by layer,
    and three consecutive ResNet-18 blocks of one shape."""
    rng = random.Random(7)
    doc = build_workload("mlp:784-96-96-96-96-10", batch_size=24, optimizer="adam")
    for layer in doc["layers"]:
        for what in ("activation", "error"):
            bits, fmt = rng.choice(WIDTHS)
            layer[f"{what}_bits"], layer[f"{what}_format"] = bits, fmt
    yield "mlp mixed widths", workload_from_dict(doc)
    doc = build_workload("resnet18", batch_size=4)
    doc["layers"] = doc["layers"][1:5]
    doc["input_shape"] = doc["layers"][0]["input_shape"]
    yield "resnet18 layers 1-4", workload_from_dict(doc)


class _BuiltError(Exception):
    """Stops :func:`mapper.make_plan` once its integer program is built."""

    def __init__(self, problem: Problem):
        self.problem = problem


def _problem(work, chip, rule: str, objective: str) -> Problem | str:
    """The integer program :func:`mapper.make_plan` builds (unsolved), or the error it raises
    (DFA's dense D_l of a convolution fits no register file)."""

    def built(problem, weight):
        raise _BuiltError(problem)

    solve, mapper.solve = mapper.solve, built
    try:
        mapper.make_plan(work, chip, parse_rule(rule), work.batch_size, objective)
    except _BuiltError as done:
        return done.problem
    except InputError as err:
        return str(err)
    finally:
        mapper.solve = solve
    raise AssertionError("make_plan solved no program")


def _exact(cost: Cost) -> tuple:
    return tuple(cost.fixed), tuple((key, tuple(v)) for key, v in cost.by_item.items())


def _same(a: Problem | str, b: Problem | str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert (a.options, a.bits, a.free) == (b.options, b.bits, b.free)
    assert _exact(a.update) == _exact(b.update)
    assert list(a.walks) == list(b.walks)
    for key, nests in a.walks.items():
        other = b.walks[key]
        assert [w for w, _ in nests] == [w for w, _ in other], key
        assert [_exact(c) for _, c in nests] == [_exact(c) for _, c in other], key


@pytest.mark.parametrize("objective", ["energy", "edp"])
def test_cached_prices_equal_fresh_ones(objective: str, monkeypatch) -> None:
    cases = [
        (name, work, chip, rule)
        for name, work in _workloads()
        for chip in (*CHIPS, *VARIANTS)
        for rule in RULES
        if unsupported_reason(chip if chip in CHIPS else "edge_sram", rule) is None
    ]
    chips = {name: load_chip(name) for name in CHIPS}
    chips.update({name: load_chip("edge_sram", overrides=o) for name, o in VARIANTS.items()})
    nest_costs.clear_cache()
    warm = {
        (name, chip, rule): _problem(work, chips[chip], rule, objective)
        for name, work, chip, rule in cases
    }
    assert sum(isinstance(p, Problem) for p in warm.values()) > len(warm) * 3 // 4
    monkeypatch.setattr(nest_costs, "CACHE_SIZE", 0)  # every (phase, layer) priced afresh
    nest_costs.clear_cache()
    for name, work, chip, rule in cases:
        _same(warm[(name, chip, rule)], _problem(work, chips[chip], rule, objective))


def test_a_context_is_shared() -> None:
    """Layers of one shape and rules that walk a phase alike price it once."""
    doc = build_workload("mlp:784-96-96-96-96-10", batch_size=8)
    work = workload_from_dict(doc)
    chip = load_chip("edge_sram")
    nest_costs.clear_cache()
    mapper.make_plan(work, chip, parse_rule("fa"), 8)
    after_fa = len(nest_costs._cache)
    # 6 layers × 3 phases less layer 0's backward, of which the middle layers repeat
    assert after_fa < 3 * len(work.layers) - 1
    mapper.make_plan(work, chip, parse_rule("ifa"), 8)  # IFA walks every phase as FA does
    assert len(nest_costs._cache) == after_fa


def test_batch_outer_run_lengths() -> None:
    """The tiles of a blocked walk are the run lengths of its loop, block by block."""
    doc = build_workload("resnet18", batch_size=4)
    layer = workload_from_dict(doc).layers[5]
    for hold in (False, True):
        walk = batch_outer(4, 2, layer, "batch_outer", 3, 48, "row", hold)
        flat: list[Tile] = []
        for tile, count in walk.tiles:
            flat += [tile] * count
        # one by one: the blocks (48, 48, 32 rows) over spatial tiles of 3 output rows
        rows = [48, 48, 32]
        first_tiles = [Tile(128, 64, True, 3)] + [Tile(128, 64, True, 3, halo=True)] * 4
        first_tiles += [Tile(128, 64, True, 1, halo=True)]
        expected: list[Tile] = []
        if hold:
            for where in first_tiles:
                for k, n in enumerate(rows):
                    expected.append(Tile(n, 64, True, where.out_rows, where.halo, k > 0))
        else:
            for n in rows:
                expected += [Tile(n, 64, True, w.out_rows, w.halo) for w in first_tiles]
        assert flat == expected
        assert all(a[0] != b[0] for a, b in zip(walk.tiles, walk.tiles[1:], strict=False))
        assert isinstance(walk, Walk)


def test_an_equal_program_is_answered_once() -> None:
    """FA and IFA build the same program: the second is answered from the first, and the
    plans are those of solving each afresh."""
    work = workload_from_dict(build_workload("mlp:784-128-128-10", batch_size=16))
    chip = load_chip("split_cores")
    mapper.clear_caches()
    fa = mapper.make_plan(work, chip, parse_rule("fa"), 16)
    assert len(mapping_program._solved) == 1
    ifa = mapper.make_plan(work, chip, parse_rule("ifa"), 16)
    assert len(mapping_program._solved) == 1  # the same program: no second solve
    assert ifa.walks is not fa.walks and ifa.placement is not fa.placement
    mapper.clear_caches()
    fresh = mapper.make_plan(work, chip, parse_rule("ifa"), 16)
    assert (fresh.placement, fresh.walks) == (ifa.placement, ifa.walks)
    assert list(fresh.walks) == list(ifa.walks)
