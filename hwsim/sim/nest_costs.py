"""The mapper's loop nests priced and pruned, once per distinct context.

For every (phase, layer) the mapper prices each candidate loop nest at every level each tensor
it moves may take, then drops the nests another one dominates (docs/simulator.md, "The
mapper"). That is most of a search, and most of it repeats: the layers of a network share a
few shapes, and rules that walk a phase alike (BP, FA and IFA their forward and gradient
phases; FA and IFA their backward phase too) price the same nests at the same levels. So the
kept nests are cached by their *context* — every value the prices are computed from — with
the tensors named relative to the layer (``("activations", +1)``: the next layer's input), and
a later (phase, layer) of the same context takes them renamed. The arithmetic is the one the
first computation did, so costs, pruning and the plan are bit-for-bit those of pricing every
(phase, layer) afresh (``tests/sim/test_nest_costs.py`` checks it).

:func:`fetch_context` lists what the moves of a fetch (``hwsim.sim.dataflow.fetch_moves``) and
their prices read. A new input of either must be added there, or two contexts that differ in
it would share prices.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

from hwsim.core.workload import Workload
from hwsim.sim import spatial
from hwsim.sim.chip import Chip, MemoryLevel
from hwsim.sim.dataflow import (
    Plan,
    backward_layer,
    error_source_layer,
    fetch_moves,
    next_activation_bits,
)
from hwsim.sim.loops import Run, Tile, Walk
from hwsim.sim.mapping_program import Cost, Item
from hwsim.sim.moves import Move
from hwsim.sim.updates import loss_moves

#: One priced move at one level: (the cost slot it charges, None for the constant part;
#: energy pJ and cycles of one fetch), each to be multiplied by the fetch's count.
Term = tuple[tuple[Item, str] | None, float, float]
#: Contexts whose kept nests are remembered (least recently used dropped first; a ResNet-18
#: search at batch 128 has about 50, a few hundred kilobytes each).
CACHE_SIZE = 1024


class Candidates:
    """The loop nests generated for one (phase, walked layer) context, shared by every
    (phase, layer) of that context: their walks, how many were generated before capacity was
    applied, and each walk's fetch classes (:meth:`Walk.fetch_classes`, computed once)."""

    __slots__ = ("_classes", "generated", "key", "walks")

    def __init__(self, walks: tuple[Walk, ...], generated: int, key: tuple[Hashable, ...]):
        self.walks, self.generated = walks, generated
        #: the generation's inputs, every one a value (what the nests depend on)
        self.key = key
        self._classes: tuple[list[Run], ...] | None = None

    def classes(self) -> tuple[list[Run], ...]:
        """Every walk's fetch classes, in walk order."""
        if self._classes is None:
            self._classes = tuple(walk.fetch_classes() for walk in self.walks)
        return self._classes


class Coster:
    """Prices moves at every level their owner may take (``options``; fixed ones at theirs)."""

    def __init__(self, chip: Chip, options: dict[Item, list[str]]):
        self.chip, self.options = chip, options
        #: each distinct move's terms: a search prices a few thousand distinct moves over and
        #: over (the same tile read for every group size), and both are fixed per coster
        self._priced: dict[Move, list[Term]] = {}

    def _at(self, m: Move, level: MemoryLevel) -> tuple[float, float]:
        if m.accesses is not None:  # a compute-in-memory level's own count
            return m.accesses * level.access_energy_pj(m.direction), float(m.cycles or 0)
        _, accesses = level.words_and_accesses(m.bits)
        if m.operand:  # streamed while the array computes: no time of its own
            return accesses * level.access_energy_pj(m.direction), 0.0
        cycles = level.latency_cycles + math.ceil(m.bits / level.bandwidth_bits_per_cycle)
        return accesses * level.access_energy_pj(m.direction), float(cycles)

    def terms(self, moves: list[Move]) -> list[Term]:
        """The priced terms of one fetch of ``moves``, in the order :meth:`add` charges them."""
        priced = self._priced
        out: list[Term] = []
        for m in moves:
            found = priced.get(m)
            if found is None:
                found = priced[m] = self._move_terms(m)
            out += found
        return out

    def _move_terms(self, m: Move) -> list[Term]:
        """One move's terms: its link, then its level (each level its owner may take)."""
        chip = self.chip
        out: list[Term] = []
        if m.link_bits:
            link = chip.interconnect
            cycles = link.latency_cycles + math.ceil(m.link_bits / link.bandwidth_bits_per_cycle)
            out.append((None, m.link_bits * link.energy_per_bit_pj, cycles))
        if m.level is None:  # generated, not stored
            e = m.generated_values * chip.prng_energy_per_value_pj
            out.append((None, e, math.ceil(m.generated_values / chip.prng_values_per_cycle)))
            return out
        levels = self.options.get(m.owner) if m.owner is not None else None
        if not levels or len(levels) == 1:
            out.append((None, *self._at(m, chip.memory(levels[0] if levels else m.level))))
            return out
        assert m.owner is not None
        for name in levels:
            out.append(((m.owner, name), *self._at(m, chip.memory(name))))
        return out

    def add(self, cost: Cost, moves: list[Move], times: int) -> None:
        """``moves`` happening ``times`` times, charged to ``cost``."""
        charge(cost, self.terms(moves), times)


def charge(cost: Cost, terms: list[Term], times: int) -> None:
    """``terms`` happening ``times`` times, added to ``cost`` one after another (the order
    fixes the floating-point sums, so every path charges in this one)."""
    fixed, by_item = cost.fixed, cost.by_item
    for slot, e, c in terms:
        pair = fixed if slot is None else by_item[slot]
        pair[0] += e * times
        pair[1] += c * times


def walk_costs(
    workload: Workload,
    chip: Chip,
    plan: Plan,
    coster: Coster,
    phase: str,
    i: int,
    candidates: Candidates,
) -> list[Cost]:
    """The cost of every candidate nest of (phase, layer i): each fetch class's moves priced
    once, then charged per nest by its count (the top forward walk also pays the loss, which
    writes in its groups)."""
    terms: dict[tuple[int, Tile, bool], list[Term]] = {}
    top = i == len(workload.layers) - 1
    costs: list[Cost] = []
    for walk, classes in zip(candidates.walks, candidates.classes(), strict=True):
        cost = Cost.zero()
        for run in classes:
            key = (run.samples, run.tile, run.first)
            found = terms.get(key)
            if found is None:
                found = terms[key] = coster.terms(
                    fetch_moves(workload, chip, plan, phase, i, run)[0]
                )
            charge(cost, found, run.count)
        if phase == "forward" and top:
            loss = Walk("batch_outer", walk.groups, ((Tile(1, 1, False), 1),))
            for run in loss.runs():
                coster.add(cost, loss_moves(workload, plan, run), run.count)
        costs.append(cost)
    return costs


def prune(costs: Sequence[Cost], k: Sequence[int]) -> list[int]:
    """Indices of the costs no other one dominates in the components ``k`` (ties: the first).

    ``b`` dominates ``a`` when it costs no more anywhere (the constant and every (item, level))
    and less somewhere, or the same everywhere and comes first."""
    import numpy as np  # the mapper's numerics load with their first use, not with the CLI

    keys = sorted({key for c in costs for key in c.by_item})
    table = np.array([[v for j in k for v in c.vector(keys, j)] for c in costs])
    order = np.arange(len(costs))
    kept: list[int] = []
    for a, row in enumerate(table):
        dominates = np.all(table <= row, axis=1) & (np.any(table < row, axis=1) | (order < a))
        dominates[a] = False
        if not dominates.any():
            kept.append(a)
    return kept


# ---------------------------------------------------------------------------------------------
# the context, and the cache


def _roles(workload: Workload, plan: Plan, phase: str, i: int) -> list[Item]:
    """Every stored (tensor, layer) a fetch of (phase, layer i) may move or price."""
    top = len(workload.layers) - 1
    if phase == "forward":
        moved = [("weights", i), ("activations", i), ("activations", min(i + 1, top))]
        return [*moved, ("errors", top)] if i == top else moved  # the loss writes there
    if phase == "backward":
        source = error_source_layer(workload, plan.rule, i)
        return [
            ("errors", source),
            ("weights", i),
            ("weight_mirror", i),
            ("feedback_weights", i),
            ("errors", i - 1),
        ]
    return [("activations", i), ("errors", i), ("gradients", i)]


def fetch_context(
    workload: Workload, chip: Chip, plan: Plan, options: dict[Item, list[str]], phase: str, i: int
) -> tuple[Hashable, ...]:
    """Every value the moves of (phase, layer i)'s fetches and their prices depend on, beyond
    the fetch itself (its samples and tile), with tensors named relative to layer i.

    That is: the layer (all but its name) and the widths of its neighbours that it moves; for
    every tensor it may move, where it lives, the levels it may take, and those levels as
    values (sizes, widths, prices, arrays); the interconnect and PRNG; the phase's MAC array and
    the innermost level that feeds it; the rule's error path and the gradient's store. The
    loop nests themselves are keyed apart (their generation's inputs,
    :func:`hwsim.sim.mapper.candidates`).
    """
    layers = workload.layers
    top = len(layers) - 1
    placed = []
    for tensor, j in _roles(workload, plan, phase, i):
        level = plan.placement.get((tensor, j))
        placed.append(
            (
                tensor,
                j - i,
                level,
                chip.memory(level) if level is not None else None,
                tuple(chip.memory(name) for name in options.get((tensor, j), ())),
            )
        )
    context = (
        phase,
        replace(layers[i], name=""),
        i == top,
        tuple(placed),
        chip.interconnect,
        chip.prng_energy_per_value_pj,
        chip.prng_values_per_cycle,
        # the MAC array's operand moves: its shape and accumulators, the innermost level
        # they are priced at (hwsim.sim.spatial.operand_moves)
        spatial.array_of(chip, phase),
        chip.memories[0],
    )
    if phase == "forward":
        return (*context, next_activation_bits(workload, i))
    if phase == "backward":
        rule = plan.rule
        return (
            *context,
            replace(backward_layer(workload, rule, i), name=""),
            rule.direct,
            rule.reads_weight_sign,
            rule.stores_feedback,
            rule.uses_feedback_weights,
            layers[error_source_layer(workload, rule, i)].error_bits,
            layers[i - 1].error_bits,
            layers[top].output_elements,
            plan.error_weight_source,
            plan.sign_source,
        )
    return (*context, plan.update, chip.gradient_bits)


@dataclass(frozen=True)
class _Kept:
    """The nests a context keeps, with their costs (tensors relative to the layer)."""

    walks: tuple[Walk, ...]
    costs: tuple[Cost, ...]


_cache: OrderedDict[tuple[Hashable, ...], _Kept] = OrderedDict()


def clear_cache() -> None:
    """Forget every remembered context (tests: a computation from scratch)."""
    _cache.clear()


def kept_nests(
    workload: Workload,
    chip: Chip,
    plan: Plan,
    coster: Coster,
    components: tuple[int, ...],
    phase: str,
    i: int,
    candidates: Candidates,
) -> list[tuple[Walk, Cost]]:
    """The candidate nests of (phase, layer i) that no other dominates in the cost components
    ``components`` (0 energy, 1 cycles), with their costs: from the cache where an earlier
    (phase, layer) had the same context, else priced and pruned now."""
    context = fetch_context(workload, chip, plan, coster.options, phase, i)
    key = (candidates.key, components, context)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return [
            (walk, _renamed(cost, i)) for walk, cost in zip(found.walks, found.costs, strict=True)
        ]
    costs = walk_costs(workload, chip, plan, coster, phase, i, candidates)
    keep = prune(costs, components) if len(costs) > 1 else [0]
    kept = [(candidates.walks[j], costs[j]) for j in keep]
    _cache[key] = _Kept(tuple(w for w, _ in kept), tuple(_renamed(c, -i) for _, c in kept))
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return kept


def _renamed(cost: Cost, shift: int) -> Cost:
    """A copy of ``cost`` with every tensor's layer index moved by ``shift``, in the same
    order (the program's variables follow it)."""
    out = Cost.zero()
    out.fixed[:] = cost.fixed
    for ((tensor, j), level), pair in cost.by_item.items():
        out.by_item[((tensor, j + shift), level)] = list(pair)
    return out
