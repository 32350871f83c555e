"""The mapper: its optimum against brute force, and monotone in capacity and price.

The mapper (hwsim.sim.mapper) chooses every tensor's level and every (phase, layer)'s loop nest
together as one integer program. Ground truth here:

* on a toy chip, the optimum over every placement (each tensor in any level it may take that
  has room), with each phase's cheapest loop nest for that placement, priced by the public
  closed form (``count_step``, ``walk_counts``), equals the mapper's cost;
* a larger level never raises, and a higher price never lowers, the dynamic energy of a step
  (everything but leakage), the quantity the search minimizes: seeded fuzz over
  every shipped chip, MLP and CNN workloads, every rule a chip runs, three optimizers, batch
  1–128 (a few hundred cases here; ``-m slow`` runs thousands);
* the four cases issue 22 reported (more memory, more energy) no longer do so.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import pytest

from hwsim.core.resources import shipped_chip_names
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate, unsupported_reason
from hwsim.sim.chip import Chip, load_chip
from hwsim.sim.counting import count_step, walk_counts
from hwsim.sim.dataflow import (
    stored_bits,
)
from hwsim.sim.loops import Tile, Walk
from hwsim.sim.mapper import candidate_walks, make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.moves import move_accesses
from hwsim.sim.pricing import price
from hwsim.sim.updates import loss_moves

DATA = Path(__file__).parent / "data"
TOY = load_chip(DATA / "toy_chip.yaml")
RULES = ("bp", "fa", "ifa", "dfa", "kp", "usf", "brsf", "frsf")
#: Relative and absolute slack of the monotonicity checks: the solver proves its optimum to
#: floating-point tolerance; no access on any chip costs less than 1 pJ.
REL, ABS = 1e-9, 1.0


def dynamic_pj(workload, chip: Chip, rule: str, batch: int) -> float:
    """A step's energy without leakage (which follows the step's time): what the mapper
    minimizes, priced by the public closed form."""
    plan = make_plan(workload, chip, parse_rule(rule), batch)
    return price(count_step(workload, chip, plan), chip, 0).total_pj


def resized(chip: Chip, level: str, factor: float) -> Chip:
    memories = tuple(
        dataclasses.replace(m, size_bytes=int(m.size_bytes * factor)) if m.name == level else m
        for m in chip.memories
    )
    return dataclasses.replace(chip, memories=memories)


def repriced(chip: Chip, level: str, key: str, factor: float) -> Chip:
    memories = tuple(
        dataclasses.replace(m, **{key: getattr(m, key) * factor}) if m.name == level else m
        for m in chip.memories
    )
    return dataclasses.replace(chip, memories=memories)


# ---------------------------------------------------------------------------------------------
# brute force


def brute_force_pj(workload, chip: Chip, rule: str, batch: int) -> tuple[float, int]:
    """The least dynamic energy over every placement the chip allows, each phase taking its
    cheapest candidate loop nest there; and how many placements were feasible.

    A step's counts are the sum of its walks', its loss's and its updates' (the closed form's
    definition), so each placement is priced as that sum, each term memoized on the levels of
    the tensors it moves; the best placement is then priced whole by ``count_step``."""
    spec = parse_rule(rule)
    base = make_plan(workload, chip, spec, batch)  # its candidates and checks, not its choice
    rows = stored_bits(workload, chip, spec, batch)
    items = [(r["tensor"], r["layer"]) for r in rows]
    bits = {(r["tensor"], r["layer"]): r["bits"] for r in rows}
    options = [
        [m.name for m in chip.spill_order(t) if m.cim is None and m.size_bits >= bits[(t, i)]]
        for t, i in items
    ]
    keys = list(base.walks)
    candidates = {key: candidate_walks(workload, chip, base, key[0], key[1])[0] for key in keys}
    top = len(workload.layers) - 1
    memo: dict[tuple, float] = {}

    def near(plan, i: int) -> tuple:  # the levels of every tensor a phase of layer i may move
        return tuple(
            sorted((k, v) for k, v in plan.placement.items() if k[1] in (i - 1, i, i + 1, top))
        )

    def walk_pj(plan, key, w: int) -> float:
        phase, i = key
        memo_key = ("walk", key, w, near(plan, i))
        if memo_key not in memo:
            walk = candidates[key][w]
            pj = price(walk_counts(workload, chip, plan, phase, i, walk), chip, 0).total_pj
            if phase == "forward" and i == top:  # the loss writes in the top walk's groups
                pj += loss_pj(workload, chip, plan, walk)
            memo[memo_key] = pj
        return memo[memo_key]

    def update_pj(plan) -> float:
        # every walk of the plan fixed, the rest of the step (the updates) is count_step less
        # the walks: priced once per placement of the tensors an update moves
        memo_key = ("update", tuple(sorted(plan.placement.items())))
        if memo_key not in memo:
            fixed = dataclasses.replace(plan, walks=base.walks)
            whole = price(count_step(workload, chip, fixed), chip, 0).total_pj
            walks = sum(walk_pj(fixed, key, candidates[key].index(base.walks[key])) for key in keys)
            memo[memo_key] = whole - walks
        return memo[memo_key]

    best, best_plan, feasible = float("inf"), None, 0
    for levels in itertools.product(*options):
        used: dict[str, int] = {}
        for item, level in zip(items, levels, strict=True):
            used[level] = used.get(level, 0) + bits[item]
        if any(used[m.name] > m.size_bits for m in chip.memories if m.name in used):
            continue
        feasible += 1
        plan = dataclasses.replace(base, placement=dict(zip(items, levels, strict=True)))
        choice = {
            key: min(range(len(candidates[key])), key=lambda w, key=key: walk_pj(plan, key, w))
            for key in keys
        }
        total = sum(walk_pj(plan, key, w) for key, w in choice.items()) + update_pj(plan)
        if total < best:
            walks = {key: candidates[key][w] for key, w in choice.items()}
            best, best_plan = total, dataclasses.replace(plan, walks=walks)
    assert best_plan is not None
    return price(count_step(workload, chip, best_plan), chip, 0).total_pj, feasible


def loss_pj(workload, chip: Chip, plan, walk: Walk) -> float:
    """The loss's error writes, in the groups of the top forward walk."""
    total = 0.0
    for run in Walk("batch_outer", walk.groups, ((Tile(1, 1, False), 1),)).runs():
        for move in loss_moves(workload, plan, run):
            _, accesses = move_accesses(chip, move)
            total += accesses * chip.memory(move.level).access_energy_pj("write") * run.count
    return total


@pytest.mark.parametrize(
    ("rule", "buf_bytes", "batch"),
    [
        ("bp", 44, 3),
        pytest.param("fa", 44, 3, marks=pytest.mark.slow),
        pytest.param("bp", 256, 2, marks=pytest.mark.slow),
        pytest.param("kp", 60, 3, marks=pytest.mark.slow),
    ],
)
def test_the_mappers_optimum_is_the_brute_force_optimum(rule, buf_bytes, batch):
    # The toy (MLP 4-3-2, 8-bit, momentum) unpinned, loop orders free, BP carrying W: every
    # tensor may take its class's level or any outward one with room (W: wmem, fbmem, buf,
    # dram; B: fbmem, buf, dram; the rest: buf, dram). A small buf makes the tensors compete.
    buf = dataclasses.replace(TOY.memory("buf"), size_bytes=buf_bytes)
    chip = dataclasses.replace(
        TOY,
        memories=tuple(buf if m.name == "buf" else m for m in TOY.memories),
        pinned=(),
        loop_order="auto",
        samples_per_weight_fetch=None,
        bp_weight_access="transport",
    )
    work = workload_from_dict(build_workload("mlp:4-3-2", batch_size=batch))
    want, feasible = brute_force_pj(work, chip, rule, batch)
    assert feasible > 100  # the enumeration is not trivial
    assert dynamic_pj(work, chip, rule, batch) == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# monotone in capacity and in price


def _random_case(rng: random.Random, chips: dict[str, Chip]):
    name = rng.choice(sorted(chips))
    chip = chips[name]
    optimizer = rng.choice(["sgd", "momentum", "adam"])
    if rng.random() < 0.25:  # a CNN: two or three consecutive layers of ResNet-18
        batch = rng.choice([1, 2, 4, 8, 16])
        start, depth = rng.randrange(0, 18), rng.randint(2, 3)
        model = f"resnet18 layers {start}-{start + depth - 1}"
        doc = build_workload("resnet18", batch_size=batch, optimizer=optimizer)
        doc["layers"] = doc["layers"][start : start + depth]
        doc["input_shape"] = doc["layers"][0]["input_shape"]
    else:
        widths = [rng.choice([64, 128, 256, 320, 512, 640, 1024]) for _ in range(rng.randint(1, 4))]
        model = "mlp:784-" + "-".join(map(str, widths)) + "-10"
        batch = rng.choice([1, 2, 3, 8, 16, 32, 64, 100, 128])
        doc = build_workload(model, batch_size=batch, optimizer=optimizer)
    work = workload_from_dict(doc)
    rules = [r for r in RULES if unsupported_reason(chip, r) is None]
    return name, chip, model, batch, optimizer, work, rng.choice(rules)


def _rounding_bound_pj(workload, chip: Chip, rule: str, batch: int) -> float:
    """How much a step may lose to word rounding at block boundaries (docs/simulator.md,
    "What the guarantee covers"): a ``batch_outer`` walk takes the largest block of its ladder
    that fits, and a block that ends inside a word shares that word with the next block, so a
    smaller block that a smaller chip had to take can round better. Per fetch of a walk cut
    into blocks, each of the (at most four) tensors it moves loses at most one word, at the
    dearest access of any digital level."""
    plan = make_plan(workload, chip, parse_rule(rule), batch)
    dearest = max(
        m.access_energy_pj(direction)
        for m in chip.memories
        if m.cim is None
        for direction in ("read", "write")
    )
    fetches = sum(
        walk.fetches
        for walk in plan.walks.values()
        if walk.order == "batch_outer" and walk.tile_count > 1
    )
    return fetches * 4 * dearest


def _fuzz(seed: int, cases: int) -> tuple[list[str], list[str]]:
    """(violations, rounding): the cases that break monotonicity, and those where a larger
    level costs more by no more than block-boundary word rounding can explain."""
    rng = random.Random(seed)
    chips = {n: load_chip(n) for n in shipped_chip_names()}
    violations: list[str] = []
    rounding: list[str] = []
    done = 0
    while done < cases:
        name, chip, model, batch, optimizer, work, rule = _random_case(rng, chips)
        digital = [m for m in chip.memories if m.cim is None and m.kind != "dram"]
        level = rng.choice(digital)
        if rng.random() < 0.5:
            factor = rng.choice([1.1, 1.25, 1.5, 2, 3, 4, 8])
            other, what = resized(chip, level.name, factor), f"{level.name} size ×{factor}"
            larger_is_dearer = False
        else:
            key = rng.choice(["read_energy_pj", "write_energy_pj"])
            factor = rng.choice([1.1, 1.2, 1.5, 2, 4])
            other, what = repriced(chip, level.name, key, factor), f"{level.name} {key} ×{factor}"
            larger_is_dearer = True
        try:
            before = dynamic_pj(work, chip, rule, batch)
        except Exception as error:  # a workload the chip cannot hold: not a case
            if "fit" not in str(error):
                raise
            continue
        after = dynamic_pj(work, other, rule, batch)
        done += 1
        slack = REL * before + ABS
        wrong = after < before - slack if larger_is_dearer else after > before + slack
        if wrong:
            case = f"{name} {what}: {model} batch {batch} {optimizer} {rule}: {before} → {after}"
            # a price change leaves the candidates as they were: only a size can round so
            bound = 0.0 if larger_is_dearer else _rounding_bound_pj(work, other, rule, batch)
            (rounding if after - before <= bound else violations).append(case)
    return violations, rounding


def test_more_capacity_never_raises_and_higher_prices_never_lower_a_steps_energy():
    assert _fuzz(seed=22, cases=250) == ([], [])


def test_block_rounding_is_the_one_known_exception_and_it_is_bounded():
    # rram_cim without MAC arrays, so that blocks may take any size (with arrays they take
    # multiples of the array's side, and this case is exact). rf ×1.1 lets layer 1's gradient
    # take ΔW in blocks of 214 rows (214, 214, 212) where the smaller chip took 4 blocks of
    # 160. A row of ΔW is 321 values of 8 bits (2,568 bits): a 160-row block ends on a 64-bit
    # word, a 214-row block inside one, which the next block writes again. 2·⌈214·2568/64⌉ +
    # ⌈212·2568/64⌉ = 2·8,587 + 8,507 = 25,681 words against 4·6,420 = 25,680: one
    # global_buffer write (86.5 pJ) more per step.
    chip = dataclasses.replace(load_chip("rram_cim"), arrays={})
    larger = resized(chip, "rf", 1.1)
    work = workload_from_dict(
        build_workload("mlp:784-320-640-10", batch_size=16, optimizer="momentum")
    )
    before, after = dynamic_pj(work, chip, "bp", 16), dynamic_pj(work, larger, "bp", 16)
    assert after - before == pytest.approx(chip.memory("global_buffer").write_energy_pj)
    assert after - before <= _rounding_bound_pj(work, larger, "bp", 16)
    # with the shipped 16 × 16 arrays the blocks are 160 rows on both chips
    shipped = load_chip("rram_cim")
    assert dynamic_pj(work, resized(shipped, "rf", 1.1), "bp", 16) == pytest.approx(
        dynamic_pj(work, shipped, "bp", 16), rel=1e-12
    )


@pytest.mark.slow
def test_capacity_and_price_fuzz_thousands_of_cases():
    violations, rounding = _fuzz(seed=2026, cases=3000)
    assert violations == []
    assert len(rounding) <= 3, rounding  # measured: 1 of 3,000 (the case above)


@pytest.mark.parametrize(
    ("chip", "level", "factor", "model", "batch", "optimizer", "rule"),
    [
        # the cases issue 22 found: (chip, level made larger, workload, rule)
        ("dfa_prng", "mirror_sram", 2, "mlp:784-1024-1024-10", 64, "momentum", "bp"),
        ("rram_cim", "act_sram", 2, "mlp:784-512-512-512-10", 64, "sgd", "bp"),
        ("edge_sram", "feedback_sram", 3, "mlp:1024-1024-1024-1024-10", 64, "momentum", "frsf"),
        ("online_edge", "fb_mram", 2, "mlp:784-640-640-640-10", 64, "sgd", "kp"),
    ],
)
def test_the_reported_cases_no_longer_cost_more_with_more_memory(
    chip, level, factor, model, batch, optimizer, rule
):
    base = load_chip(chip)
    work = workload_from_dict(build_workload(model, batch_size=batch, optimizer=optimizer))
    before = dynamic_pj(work, base, rule, batch)
    assert dynamic_pj(work, resized(base, level, factor), rule, batch) <= before * (1 + REL)


def test_a_dearer_read_never_makes_the_step_cheaper_on_edge_sram():
    # issue 22: raising act_sram's read energy from 50.9 to 61.08 pJ used to lower the step
    work = workload_from_dict(build_workload("mlp:784-256-256-256-256-256-10"))
    base = load_chip("edge_sram")
    dearer = repriced(base, "act_sram", "read_energy_pj", 61.08 / 50.9)
    for rule in ("bp", "fa"):
        assert dynamic_pj(work, dearer, rule, 64) >= dynamic_pj(work, base, rule, 64)


# ---------------------------------------------------------------------------------------------
# placement by price, pins, objectives


def test_pinned_classes_keep_their_level_whatever_the_price():
    # edge_sram puts small tensors in act_sram (cheaper per access than the 1 MB weight SRAM);
    # pinning weights keeps every layer's W in weight_sram
    work = workload_from_dict(build_workload("mlp:784-256-256-10"))
    free = simulate(work, "edge_sram", "fa").rules["fa"]
    assert "act_sram" in free.placement["weights"].values()
    pinned = dataclasses.replace(load_chip("edge_sram"), pinned=("weights",))
    fixed = simulate(work, pinned, "fa").rules["fa"]
    assert set(fixed.placement["weights"].values()) == {"weight_sram"}
    assert fixed.energy_pj >= free.energy_pj - free.step.energy.breakdown_pj["leakage"]


def test_the_objective_trades_energy_for_time():
    work = workload_from_dict(build_workload("mlp:784-1024-1024-10"))
    chip = load_chip("dfa_prng")
    by_objective = {}
    for objective in ("energy", "latency", "edp"):
        the_chip = dataclasses.replace(chip, objective=objective)
        r = simulate(work, the_chip, "bp").rules["bp"]
        assert r.search["objective"] == objective
        by_objective[objective] = (dynamic_of(r), r.latency_cycles)
    energy, latency, edp = (by_objective[o] for o in ("energy", "latency", "edp"))
    # each objective is at least as good as the others by its own measure (the latency and
    # energy-delay searches consider the energy optimum among their candidates)
    assert latency[1] <= energy[1]
    assert energy[0] <= latency[0] * (1 + REL) and energy[0] <= edp[0] * (1 + REL)
    assert edp[0] * edp[1] <= energy[0] * energy[1] * (1 + REL)


def dynamic_of(result) -> float:
    return result.step.energy.total_pj - result.step.energy.breakdown_pj["leakage"]


def test_objective_is_validated_with_file_and_line(tmp_path):
    text = (DATA / "toy_chip.yaml").read_text()
    text = text.replace("training:\n", "training:\n  objective: speed\n", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    from hwsim.core.errors import InputError

    with pytest.raises(InputError, match=r"bad.yaml:\d+: training.objective"):
        load_chip(bad)
