"""The mapper's integer program: its costs, its variables and constraints, the solve, and the
ties settled after it (docs/simulator.md, "The mapper"). ``hwsim.sim.mapper`` builds the
:class:`Problem` (the loop nests and placements a plan may take, and what each costs) and
turns the :class:`Solution` into a plan.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hwsim.sim.loops import Walk

#: (tensor, layer index)
Item = tuple[str, int]
#: (phase, layer index)
PhaseKey = tuple[str, int]
#: Costs this close (relative) are a tie: ties are settled after the solve, without changing
#: the cost (:func:`_settle_ties`).
TIE = 1e-12
#: Seconds one integer program may take to prove its optimum; past it the best mapping found
#: is kept and the search says how far from proven it is (``SearchStats.gap``).
SOLVE_SECONDS = 20.0


@dataclass
class Cost:
    """Cost of a choice: a constant, plus a cost per (item, level) where the item has a choice.
    Each cost is a pair (energy pJ, cycles)."""

    fixed: list[float]
    by_item: dict[tuple[Item, str], list[float]]

    @classmethod
    def zero(cls) -> Cost:
        return cls([0.0, 0.0], defaultdict(lambda: [0.0, 0.0]))

    def vector(self, keys: Sequence[tuple[Item, str]], k: int) -> tuple[float, ...]:
        """The ``k``-th cost (0 energy, 1 cycles) as a vector over ``keys``, fixed first."""
        return (
            self.fixed[k],
            *(self.by_item[key][k] if key in self.by_item else 0.0 for key in keys),
        )


# ---------------------------------------------------------------------------------------------
# the integer program


@dataclass
class Problem:
    """Everything the integer program needs, built once per plan and solved per weight."""

    options: dict[Item, list[str]]
    bits: dict[Item, int]
    free: dict[str, int]
    #: (phase, layer) → its kept loop nests and their costs
    walks: dict[PhaseKey, list[tuple[Walk, Cost]]]
    #: the update's (and every other walk-independent) cost
    update: Cost


@dataclass(frozen=True)
class Solution:
    """What one solve found: the mapping, the program's size, and how sure it is.

    ``status``: ``optimal`` (proven), ``limit`` (the time limit stopped the proof: the best
    mapping found, within ``gap`` of the bound), ``infeasible`` or ``overflow`` (prices too
    large to sum)."""

    placement: dict[Item, str]
    walks: dict[PhaseKey, Walk]
    variables: int
    status: str
    gap: float = 0.0


#: Programs solved lately and what was found, most recent last: the solve is deterministic, so
#: a program equal to one of them, term for term and in the same order, has the same answer
#: (FA and IFA, for one, build the same program: the same tensors, nests and prices).
_solved: list[tuple[tuple[Any, ...], Solution]] = []
#: How many solved programs are remembered.
SOLVED_KEPT = 4


def solve(problem: Problem, weight: tuple[float, float]) -> Solution:
    """The placement and loop nests of least ``weight[0]·energy + weight[1]·cycles``: the
    answer of an equal program solved lately, else a solve (:func:`_solve`)."""
    key = _fingerprint(problem, weight)
    found = next((solution for known, solution in _solved if known == key), None)
    if found is None:
        found = _solve(problem, weight)
        if found.status != "limit":  # a stopped proof depends on the clock: never reused
            _solved.append((key, found))
            del _solved[:-SOLVED_KEPT]
    # the caller keeps these dicts in its plan: a copy each, the remembered ones stay as found
    return Solution(
        dict(found.placement), dict(found.walks), found.variables, found.status, found.gap
    )


def _fingerprint(problem: Problem, weight: tuple[float, float]) -> tuple[Any, ...]:
    """Everything the program is built from, in the order it is built (the order of the
    variables and constraints follows it): equal fingerprints, the same program."""

    def cost(c: Cost) -> tuple[Any, ...]:
        return tuple(c.fixed), tuple((key, tuple(pair)) for key, pair in c.by_item.items())

    return (
        weight,
        tuple((item, tuple(levels)) for item, levels in problem.options.items()),
        tuple(problem.bits.items()),
        tuple(problem.free.items()),
        tuple(
            (key, tuple((walk, cost(c)) for walk, c in options))
            for key, options in problem.walks.items()
        ),
        cost(problem.update),
    )


def forget_solved() -> None:
    """Forget the programs solved lately (a search from scratch)."""
    _solved.clear()


def _solve(problem: Problem, weight: tuple[float, float]) -> Solution:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    index: dict[tuple[Any, ...], int] = {}
    cost: list[float] = []
    integral: list[int] = []

    def var(key: tuple[Any, ...], c: float, integer: int) -> int:
        j = index.get(key)
        if j is None:
            j = index[key] = len(cost)
            cost.append(0.0)
            integral.append(integer)
        cost[j] += c
        return j

    def price(pair: list[float]) -> float:
        return weight[0] * pair[0] + weight[1] * pair[1]

    choice = {item: levels for item, levels in problem.options.items() if len(levels) > 1}
    rows_a: list[int] = []
    cols_a: list[int] = []
    vals_a: list[float] = []
    lower: list[float] = []
    upper: list[float] = []

    def constraint(terms: list[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(lower)
        for j, v in terms:
            rows_a.append(r)
            cols_a.append(j)
            vals_a.append(v)
        lower.append(lo)
        upper.append(hi)

    for item, levels in choice.items():
        constraint([(var(("x", item, lvl), 0.0, 1), 1.0) for lvl in levels], 1, 1)
    constant = price(problem.update.fixed)
    for (item, lvl), pair in problem.update.by_item.items():
        var(("x", item, lvl), price(pair), 1)
    for key, options in problem.walks.items():
        if len(options) == 1:
            ((_, c),) = options
            constant += price(c.fixed)
            for (item, lvl), pair in c.by_item.items():
                var(("x", item, lvl), price(pair), 1)
            continue
        # walk constants less their least (a constant of the program): small numbers keep the
        # solver's absolute tolerances far below any real difference
        least = min(price(c.fixed) for _, c in options)
        # ties go to the nest of fewer fetches (the same cost in fewer, larger transfers)
        picks = [
            (var(("z", key, w), price(c.fixed) - least, 1), 1.0) for w, (_, c) in enumerate(options)
        ]
        constraint(picks, 1, 1)
        # The products z·x as a joint choice y[w, l] of (loop nest, level) per item the phase
        # moves, whose marginals are z and x: exact for binaries, and a tight relaxation.
        touched = sorted({item for _, c in options for item, _ in c.by_item})
        for item in touched:
            levels = choice[item]
            joint = {
                (w, lvl): var(
                    ("y", key, w, item, lvl), price(c.by_item.get((item, lvl), [0, 0])), 0
                )
                for w, (_, c) in enumerate(options)
                for lvl in levels
            }
            for w, (z, _) in enumerate(picks):
                constraint([(joint[(w, lvl)], 1.0) for lvl in levels] + [(z, -1.0)], 0, 0)
            for lvl in levels:
                x = index[("x", item, lvl)]
                constraint(
                    [(joint[(w, lvl)], 1.0) for w in range(len(options))] + [(x, -1.0)], 0, 0
                )
    for level, room in problem.free.items():
        terms = [
            (index[("x", item, level)], float(problem.bits[item]))
            for item, levels in choice.items()
            if level in levels
        ]
        fixed_here = sum(
            problem.bits[item] for item, levels in problem.options.items() if levels == [level]
        )
        if terms or fixed_here:
            if fixed_here > room:
                return Solution({}, {}, 0, "infeasible")
            if terms and sum(v for _, v in terms) + fixed_here > room:
                constraint(terms, -math.inf, room - fixed_here)
    picked: dict[tuple[Any, ...], float] = {}
    status, gap = "optimal", 0.0
    if cost:
        objective = np.array(cost)
        if not np.all(np.isfinite(objective)):
            return Solution({}, {}, 0, "overflow")  # the caller keeps a plain plan
        if (
            float(np.max(np.abs(objective))) > 1e12
        ):  # absurd prices: a uniform scale keeps the optimum
            objective = objective / float(np.max(np.abs(objective))) * 1e12
        a = coo_array((vals_a, (rows_a, cols_a)), shape=(len(lower), len(cost))).tocsr()
        with _native_stdout_silenced():
            result = milp(
                objective,
                integrality=np.array(integral),
                bounds=Bounds(0, 1),
                constraints=LinearConstraint(a, lower, upper) if lower else None,
                options={"mip_rel_gap": 0.0, "presolve": True, "time_limit": SOLVE_SECONDS},
            )
        if result.x is None:
            return Solution({}, {}, len(cost), "infeasible" if result.status == 2 else "limit")
        picked = {key: result.x[j] for key, j in index.items()}
        if result.status != 0:
            status, gap = "limit", float(result.mip_gap or 0.0)
    placement = {item: levels[0] for item, levels in problem.options.items() if len(levels) == 1}
    for item, levels in choice.items():
        placement[item] = max(levels, key=lambda lvl: picked[("x", item, lvl)])
    placement = _settle_ties(problem, placement, weight)
    walks = {key: _best_walk(options, placement, weight) for key, options in problem.walks.items()}
    return Solution(placement, walks, len(cost), status, gap)


def _walk_price(cost: Cost, placement: dict[Item, str], weight: tuple[float, float]) -> float:
    """``cost`` at ``placement``, weighted."""
    total = weight[0] * cost.fixed[0] + weight[1] * cost.fixed[1]
    for (item, level), pair in cost.by_item.items():
        if placement.get(item) == level:
            total += weight[0] * pair[0] + weight[1] * pair[1]
    return total


def _best_walk(
    options: list[tuple[Walk, Cost]], placement: dict[Item, str], weight: tuple[float, float]
) -> Walk:
    """The least-cost loop nest at ``placement``; among equal costs, the one of fewest transfer
    cycles (leakage is paid per cycle), then of fewest fetches."""
    priced = [
        (_walk_price(c, placement, weight), _walk_price(c, placement, (0.0, 1.0)), walk.fetches, k)
        for k, (walk, c) in enumerate(options)
    ]
    least = min(p for p, _, _, _ in priced)
    ties = [
        (cycles, fetches, k) for p, cycles, fetches, k in priced if p <= least + TIE * abs(least)
    ]
    return options[min(ties)[2]][0]


def _settle_ties(
    problem: Problem, placement: dict[Item, str], weight: tuple[float, float]
) -> dict[Item, str]:
    """``placement`` with every tensor moved as near its class's level as it can go without
    raising the cost: equal costs never move a tensor for nothing. The cost can only stay."""
    placement = dict(placement)
    used: dict[str, int] = defaultdict(int)
    for item, level in placement.items():
        used[level] += problem.bits[item]
    touching: dict[Item, list[PhaseKey]] = defaultdict(list)
    for key, options in problem.walks.items():
        for item in {i for _, c in options for i, _ in c.by_item}:
            touching[item].append(key)

    def cost_of(item: Item) -> float:
        total = sum(
            weight[0] * pair[0] + weight[1] * pair[1]
            for (i, level), pair in problem.update.by_item.items()
            if i == item and placement[item] == level
        )
        for key in touching[item]:
            options = problem.walks[key]
            total += min(_walk_price(c, placement, weight) for _, c in options)
        return total

    for item, levels in problem.options.items():
        here = levels.index(placement[item])
        for level in levels[:here]:
            if used[level] + problem.bits[item] > problem.free[level]:
                continue
            before, was = cost_of(item), placement[item]
            placement[item] = level
            if cost_of(item) <= before + TIE * abs(before):
                used[was] -= problem.bits[item]
                used[level] += problem.bits[item]
                break
            placement[item] = was
    return placement


# ---------------------------------------------------------------------------------------------
# the plan


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Standard output closed at the file-descriptor level: HiGHS' C++ core prints a debugging
    line on some solves whatever its output flag, and a command's output must not carry it."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (an embedded interpreter): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
