"""The mapper: where every tensor lives and how every (phase, layer) walks, chosen together.

A *mapping* of one training step is a placement (a memory level for every stored (tensor,
layer)) and a loop nest (:class:`hwsim.sim.loops.Walk`) for every batch phase of every layer.
:func:`make_plan` finds the one of least cost in a space that depends on the chip only through
feasibility:

* **loop nests** — per (phase, layer), ``batch_outer`` walks for every group size of the
  ladder ⌈N / g⌉ and every spatial tile height ⌈H / t⌉ of a convolution's output, and
  ``weight_outer`` walks for every tile size ⌈R / k⌉ of the stationary tensor (by rows, by
  columns, or rows cut into pieces for the gradient). A nest is feasible when its working set
  fits the innermost level: a group's streamed slices for ``batch_outer`` (the stationary
  tensor streams through), the held tile plus a line of each streamed side for
  ``weight_outer``;
* **placements** — every (tensor, layer) may live in its class's level or any level outward of
  it that can hold it (ROM only for feedback weights, compute-in-memory arrays only for what
  the chip places there), subject to every level's capacity.

The cost is linear in the choice: each move of a fetch charges its tensor's level, so the
search is an exact integer program (placement × loop nest, with the products of the two
linearized), solved to proven optimality by HiGHS (``scipy.optimize.milp``). Loop nests that
cost at least as much as another at every level of every tensor they touch are pruned first;
pruning by dominance never removes an optimum. Generating, pricing and pruning are shared by
every (phase, layer) of one context, layers of one shape and rules that walk a phase alike
(:mod:`hwsim.sim.nest_costs`), exactly: the program is the one pricing each afresh builds.

Capacity monotonicity follows by construction: a larger level admits every loop nest and every
placement a smaller one admits (the candidates are a fixed ladder filtered by fit), so the
optimum can only fall. Price monotonicity too: at fixed mapping the cost is linear in every
price with non-negative counts. docs/simulator.md ("The mapper") states the argument and what
it leaves out (pinned classes and compute-in-memory arrays are allocated before the search).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule
from hwsim.core.workload import Layer, Workload
from hwsim.sim import spatial
from hwsim.sim.chip import Chip, MacArray, MemoryLevel
from hwsim.sim.dataflow import (
    Plan,
    backward_element_bits,
    backward_layer,
    check_cim_rule,
    check_feedback_storage,
    cim_level,
    cim_tiles,
    error_source_layer,
    in_array,
    next_activation_bits,
    stored_bits,
    update_fractions,
)
from hwsim.sim.loops import (
    BATCH_PHASES,
    Tile,
    Walk,
    batch_outer,
    extent,
    geometry,
    ladder,
    shape,
    tileable,
    weight_outer,
)
from hwsim.sim.mapping_program import (
    Cost,
    Item,
    PhaseKey,
    Problem,
    forget_solved,
    solve,
)
from hwsim.sim.nest_costs import Candidates, Coster, clear_cache, kept_nests
from hwsim.sim.updates import update_parts


@dataclass(frozen=True)
class SearchStats:
    """What the search looked at, for people and ``--json``."""

    objective: str
    #: loop nests generated, over all (phase, layer)
    candidates: int
    #: of those, the ones whose working set fits the innermost level
    feasible: int
    #: left after pruning by dominance (what the integer program chooses among)
    kept: int
    #: (tensor, layer) with a choice of level
    placements: int
    #: variables of the integer program(s)
    variables: int
    #: integer programs solved (one per objective weight)
    solves: int
    seconds: float
    #: every program solved to proven optimality (else the time limit stopped a proof)
    optimal: bool = True
    #: the largest relative gap to the proven bound where a proof was stopped (0 if optimal)
    gap: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON of these numbers, but the time (outputs stay byte-identical from run to run;
        benchmarks read :attr:`seconds`)."""
        return {
            "objective": self.objective,
            "candidates": self.candidates,
            "feasible": self.feasible,
            "kept": self.kept,
            "placements": self.placements,
            "variables": self.variables,
            "solves": self.solves,
            "optimal": self.optimal,
            "gap": self.gap,
        }


# ---------------------------------------------------------------------------------------------
# loop nests


def _widths(workload: Workload, chip: Chip, plan: Plan, phase: str, i: int) -> tuple[int, ...]:
    """(row-side bits, column-side bits, stationary element bits, has bias) of a phase."""
    layer = workload.layers[i]
    if phase == "forward":
        return next_activation_bits(workload, i), layer.activation_bits, layer.weight_bits, 1
    if phase == "backward":
        source = workload.layers[error_source_layer(workload, plan.rule, i)]
        down = workload.layers[i - 1].error_bits
        return source.error_bits, down, backward_element_bits(layer, plan), 0
    return layer.error_bits, layer.activation_bits, chip.gradient_bits, 1


def _lines(layer: Layer) -> tuple[int, int]:
    """(row-side, column-side) elements per row / column of the stationary tensor that a
    ``weight_outer`` tile keeps while samples stream through it: one output row of a
    convolution and the input lines its kernel spans (a line buffer); one element of a dense
    layer."""
    geo = geometry(layer)
    if geo is None:
        return 1, 1
    return geo.out_cols, min(geo.k_rows, geo.in_rows) * geo.in_cols


def _channel(layer: Layer, out_rows: int) -> tuple[int, int]:
    """(row-side, column-side) elements of one channel of one sample over a spatial tile of
    ``out_rows`` output rows (0: all): what streams past a block one channel at a time."""
    geo = geometry(layer)
    if geo is None:
        return 1, 1
    rows = out_rows or geo.out_rows
    return rows * geo.out_cols, geo.inputs_touched(rows)


def _block_bits(
    layer: Layer,
    size: int,
    *,
    by: str,
    hold: bool,
    h: int,
    r: int,
    widths: tuple[int, int, int],
    per_channel: tuple[int, int],
) -> int:
    """The working set of a ``batch_outer`` group of ``r`` samples whose stationary tensor
    streams in blocks of ``size`` rows (``by="row"``) or columns, over spatial tiles of ``h``
    output rows: the block's own side held for the group, and the other side held too
    (``hold``) or one channel of it in flight with the block's weights that meet it."""
    rows, cols, taps = shape(layer)
    row_bits, col_bits, elem_bits = widths
    if by == "row":
        _, held, other, _ = extent(layer, Tile(size, cols, True, h))
        held_bits, other_bits = row_bits, col_bits
        other = other if hold else per_channel[1]
    else:
        _, other, held, _ = extent(layer, Tile(rows, size, True, h))
        held_bits, other_bits = col_bits, row_bits
        other = other if hold else per_channel[0]
    need = r * (held * held_bits + other * other_bits)
    if not hold:
        need += (size if by == "row" else rows) * taps * elem_bits
    return need


def _block_sizes(array: MacArray | None, phase: str, by: str, total: int, taps: int) -> list[int]:
    """The block sizes a ``batch_outer`` nest may cut ``total`` rows (or columns) into, largest
    first, below ``total``: every multiple of the granule the MAC array takes that side in
    (its columns for the output channels of forward and backward, its rows for ΔW's rows,
    its columns for ΔW's columns × taps; 1 without an array).

    Of these the nest takes the largest that fits. Blocks whole in the array's granule waste
    no elements, so a larger one never costs more array cycles or operand reads than a smaller
    one, and it re-reads the uncut side less: the largest fitting is the best of the family
    up to word rounding at block ends (docs/simulator.md, "What the guarantee covers")."""
    granule = 1
    if array is not None:
        if phase == "gradient":
            granule = array.rows if by == "row" else array.cols // math.gcd(array.cols, taps)
        else:
            granule = array.cols
    return list(_multiples(total, granule))


@functools.lru_cache(maxsize=1024)
def _multiples(total: int, granule: int) -> tuple[int, ...]:
    """The multiples of ``granule`` below ``total``, largest first."""
    return tuple(range((total - 1) // granule * granule, 0, -granule))


def _largest_fitting(sizes: list[int], working: Callable[[int], int], capacity: int) -> int | None:
    """The largest of ``sizes`` (descending) whose ``working`` set fits ``capacity``, by
    bisection: the working set of a block grows with its size."""
    lo, hi = 0, len(sizes)  # sizes[lo:] may fit; the answer is the first that does
    while lo < hi:
        mid = (lo + hi) // 2
        if working(sizes[mid]) <= capacity:
            hi = mid
        else:
            lo = mid + 1
    return sizes[lo] if lo < len(sizes) else None


def candidate_walks(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int
) -> tuple[list[Walk], int]:
    """The loop nests (phase, layer i) may take on this chip, and how many were generated
    before the innermost level's capacity was applied.

    Raises :class:`InputError` where none fits (an innermost level too small for one sample's
    slice of one output row).
    """
    found = candidates(workload, chip, plan, phase, i)
    return list(found.walks), found.generated


def candidates(workload: Workload, chip: Chip, plan: Plan, phase: str, i: int) -> Candidates:
    """:func:`candidate_walks` as the shared, cached :class:`Candidates` (do not change them).

    The nests depend on the layer only through its shape, widths and bias, so layers of one
    shape (and rules that walk a phase alike) share one generation: the cache key is every
    input :func:`_generate` reads.
    """
    layer = backward_layer(workload, plan.rule, i) if phase == "backward" else workload.layers[i]
    stationary = bool(in_array(chip, plan, phase, i)) or (
        phase == "backward"
        and plan.error_weight_source == "transport"
        and cim_level(chip, plan, "weights", i) is not None
    )
    found = _generate(
        (
            phase,
            plan.batch_size,
            replace(layer, name=""),  # the name is the one field that never matters
            chip.memories[0].size_bits,
            _widths(workload, chip, plan, phase, i),
            stationary,
            plan.update == "fused",
            chip.samples_per_weight_fetch,
            chip.loop_order,
            spatial.array_of(chip, phase),
        )
    )
    if not found.walks:
        _no_nest(workload, chip, plan, phase, i, layer)
    return found


#: Every input of a generation of loop nests: (phase, batch, the walked layer without its name,
#: the innermost level's bits, the phase's widths, stationary in arrays, fused update, samples
#: per weight fetch, loop order, the phase's MAC array: its side sets the block sizes)
GenerationKey = tuple[
    str, int, Layer, int, tuple[int, ...], bool, bool, int | None, str, MacArray | None
]


@functools.lru_cache(maxsize=256)  # a few hundred kilobytes each for ResNet-18 at batch 128
def _generate(key: GenerationKey) -> Candidates:
    """The loop nests of ``phase`` over ``layer`` (the walked one: DFA's D_l for its backward
    phase) for a batch of ``n``: ``key`` holds every input, each a value, so the result is
    shared by every (phase, layer) with that key."""
    phase, n, layer, capacity, widths, stationary, fused, samples_per_fetch, loop_order, array = key
    row_bits, col_bits, elem_bits, has_bias = widths
    rows, cols, taps = shape(layer)
    geo = geometry(layer)
    if fused:
        groups = [1]
    elif samples_per_fetch is not None:
        groups = [min(samples_per_fetch, n)]
    else:
        groups = ladder(n)
    heights = ladder(geo.out_rows) if geo is not None and not stationary else [0]
    generated = 0
    walks: list[Walk] = []
    order = "per_sample" if fused else "batch_outer"
    blocks_by = {"forward": ("row",), "backward": ("column",)}.get(phase, ("row", "column"))
    for h in heights:
        spatial = h if geo is not None and h < geo.out_rows else 0
        _, row_side, col_side, _ = extent(layer, Tile(rows, cols, True, h))
        whole = row_side * row_bits + col_side * col_bits
        if stationary:  # the arrays take one output position's vectors at a time
            whole = rows * row_bits + cols * taps * col_bits
        for r in groups:
            generated += 1
            if r * whole <= capacity:
                walks.append(_with_working(batch_outer(n, r, layer, order, spatial), r * whole))
                continue
            if stationary or not tileable(layer):
                continue
            # the group's slices of the whole tensor do not fit: the tensor streams through in
            # blocks of rows (or columns), the largest that fit, either holding the side the
            # blocks do not cut (read once per group and spatial tile) or streaming it past
            # each block one channel at a time (re-read per block; the block's own side held)
            per_channel = _channel(layer, h)
            for by in blocks_by:
                sizes = _block_sizes(array, phase, by, rows if by == "row" else cols, taps)
                for hold in (True, False):
                    generated += 1
                    working = functools.partial(
                        _block_bits,
                        layer,
                        by=by,
                        hold=hold,
                        h=h,
                        r=r,
                        widths=(row_bits, col_bits, elem_bits),
                        per_channel=per_channel,
                    )
                    fits = _largest_fitting(sizes, working, capacity)
                    if fits is not None:
                        walk = batch_outer(n, r, layer, order, spatial, fits, by, hold)
                        walks.append(_with_working(walk, working(fits)))
    tiled: list[Walk] = []
    if not (fused or stationary or loop_order == "batch_outer" or not tileable(layer)):
        row_line, col_line = _lines(layer)
        bias = elem_bits if has_bias and layer.bias else 0
        sides = {"forward": ("row",), "backward": ("column",)}.get(phase, ("row", "column", "both"))
        for by in sides:
            for size in ladder(cols if by != "row" else rows):
                generated += 1
                if by == "row":
                    held = size * (cols * taps * elem_bits + bias)
                    held += cols * col_line * col_bits + size * row_line * row_bits
                elif by == "column":
                    held = rows * (size * taps * elem_bits + bias)
                    held += size * col_line * col_bits + rows * row_line * row_bits
                else:
                    held = size * taps * elem_bits + bias
                    held += size * col_line * col_bits + row_line * row_bits
                if held <= capacity:
                    tiled.append(_with_working(weight_outer(n, layer, size, by), held))
    if loop_order == "weight_outer" and tiled:
        walks = tiled
    else:
        walks += tiled
    return Candidates(tuple(walks), generated, key)


def clear_caches() -> None:
    """Forget every cached generation, priced context and solved program: the next search
    starts from scratch (benchmarks of a cold search)."""
    _generate.cache_clear()
    clear_cache()
    forget_solved()


def _with_working(walk: Walk, bits: int) -> Walk:
    """``walk`` with its working set recorded."""
    return Walk(walk.order, walk.groups, walk.tiles, walk.tiled_by, bits)


def _no_nest(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, layer: Layer
) -> NoReturn:
    """Refuse a (phase, layer) no loop nest of which fits the innermost level."""
    n, inner = plan.batch_size, chip.memories[0]
    capacity = inner.size_bits
    row_bits, col_bits, _, _ = _widths(workload, chip, plan, phase, i)
    rows, cols, _ = shape(layer)
    geo = geometry(layer)
    one = (
        Tile(1, cols, True, 1 if geo else 0)
        if phase != "backward"
        else Tile(rows, 1, True, 1 if geo else 0)
    )
    _, row_side, col_side, _ = extent(layer, one)
    if chip.samples_per_weight_fetch is not None and chip.samples_per_weight_fetch < n:
        raise InputError(
            f"{chip.where('training.samples_per_weight_fetch')}: groups of "
            f"{chip.samples_per_weight_fetch} samples of the {phase} pass of layer "
            f"{workload.layers[i].name!r} fit no loop nest in the innermost level "
            f"{inner.name!r} ({capacity} bits); use auto or a smaller group"
        )
    raise InputError(
        f"{chip.where(f'memories.{inner.name}.size_bytes')}: no loop nest of the {phase} "
        f"pass of layer {workload.layers[i].name!r} fits the innermost level "
        f"{inner.name!r} ({capacity} bits): one sample's smallest slice needs "
        f"{row_side * row_bits + col_side * col_bits} bits; give it more size_bytes"
    )


# ---------------------------------------------------------------------------------------------
# placement options


def _options(
    workload: Workload, chip: Chip, rule: Rule, rows: list[dict[str, Any]]
) -> tuple[dict[Item, str], dict[Item, list[str]], dict[Item, int], dict[str, int]]:
    """(fixed placements, levels each other item may take, bits per item, free bits per
    level after the fixed ones).

    Fixed before the search, in this order: the chip's pinned classes (each at its class's
    level if it still has room, else outward, as the chip asks), then what the chip places in
    compute-in-memory arrays (whole arrays, in class order). Everything else may take its
    class's level or any digital level outward that can hold it.
    """
    free = {m.name: m.size_bits for m in chip.memories}
    fixed: dict[Item, str] = {}
    bits: dict[Item, int] = {}
    first = [r for t in chip.pinned for r in rows if r["tensor"] == t]
    first += [
        r
        for r in rows
        if r["tensor"] not in chip.pinned
        and chip.memory(chip.placement[r["tensor"]]).cim is not None
    ]
    for row in rows:
        bits[(row["tensor"], row["layer"])] = row["bits"]
    for row in first:
        tensor, i, need = row["tensor"], row["layer"], row["bits"]
        pinned = tensor in chip.pinned
        for level in chip.spill_order(tensor):
            if not pinned and level.cim is None:
                break  # not in the arrays: the search places it among the digital levels
            size = need
            if level.cim is not None:  # whole arrays
                size = _array_bits(workload, chip, rule, level, tensor, i)
            if free[level.name] >= size:
                free[level.name] -= size
                fixed[(tensor, i)] = level.name
                break
        else:
            if pinned:
                _no_room(workload, chip, tensor, i, need)
    options: dict[Item, list[str]] = {}
    for row in rows:
        item = (row["tensor"], row["layer"])
        if item in fixed:
            continue
        levels = [
            m.name
            for m in chip.spill_order(row["tensor"])
            if m.cim is None and m.size_bits >= row["bits"]
        ]
        if not levels:
            _no_room(workload, chip, row["tensor"], row["layer"], row["bits"])
        options[item] = levels
    return fixed, options, bits, free


def _array_bits(
    workload: Workload, chip: Chip, rule: Rule, level: MemoryLevel, tensor: str, i: int
) -> int:
    """Bits (tensor, layer i) takes on a compute-in-memory level: every cell of its arrays."""
    assert level.cim is not None
    arrays = cim_tiles(chip, level.name, workload, rule, tensor, i)
    return arrays * level.cim.rows * level.cim.columns * level.cim.bits_per_cell


def free_bits(workload: Workload, chip: Chip, plan: Plan) -> dict[str, int]:
    """Bits left free in every level under ``plan``'s placement (arrays count whole)."""
    free = {m.name: m.size_bits for m in chip.memories}
    for row in stored_bits(workload, chip, plan.rule, plan.batch_size):
        item = (row["tensor"], row["layer"])
        level = chip.memory(plan.placement[item])
        need = row["bits"]
        if level.cim is not None:
            need = _array_bits(workload, chip, plan.rule, level, *item)
        free[level.name] -= need
    return free


def _no_room(workload: Workload, chip: Chip, tensor: str, i: int, bits: int) -> None:
    raise InputError(
        f"{chip.where(f'placement.{tensor}')}: {tensor} of layer "
        f"{workload.layers[i].name!r} ({bits} bits) fit in neither "
        f"{chip.placement[tensor]!r} nor any level outward; give a level more "
        "size_bytes or place the tensor further out"
    )


def make_plan(
    workload: Workload, chip: Chip, rule: Rule, batch_size: int, objective: str | None = None
) -> Plan:
    """Place every tensor and choose every loop nest, together, at least cost.

    ``objective`` (default: the chip's ``training.objective``): ``energy`` is solved exactly;
    ``latency`` and ``edp`` solve the same program for a few weights of energy against the
    transfer cycles of a step, simulate each result and keep the best by the objective (the
    step's time comes from the SimPy replay, which no linear cost captures).
    """
    start = time.perf_counter()
    objective = objective or chip.objective
    check_feedback_storage(chip, rule)
    check_cim_rule(chip, rule)
    rows = stored_bits(workload, chip, rule, batch_size)
    sign = chip.bp_weight_access if rule.reads_weight_sign else ""
    if not rule.stores_feedback and rule.uses_feedback_weights:
        source = "none"  # uSF: B = sign(W) · rms(W), one scalar per layer
    elif rule.uses_feedback_weights:
        source = "prng" if chip.feedback_storage == "prng" else "feedback"
    else:
        source = chip.bp_weight_access
    fixed, options, bits, free = _options(workload, chip, rule, rows)
    base = Plan(
        rule=rule,
        batch_size=batch_size,
        placement={**fixed, **{item: levels[0] for item, levels in options.items()}},
        error_weight_source=source,
        update=chip.update,
        sign_source=sign,
        update_fraction=update_fractions(workload),
    )
    coster = Coster(chip, options)
    components = {"energy": (0,), "latency": (1,), "edp": (0, 1)}[objective]
    walks: dict[PhaseKey, list[tuple[Walk, Cost]]] = {}
    generated = feasible = kept = 0
    for i in range(len(workload.layers)):
        for phase in BATCH_PHASES:
            if phase == "backward" and i == 0:
                continue
            made = candidates(workload, chip, base, phase, i)
            generated += made.generated
            feasible += len(made.walks)
            nests = kept_nests(workload, chip, base, coster, components, phase, i, made)
            kept += len(nests)
            walks[(phase, i)] = nests
    update = Cost.zero()
    for i in range(len(workload.layers)):
        for part in update_parts(workload, chip, base, i):
            coster.add(update, part.moves, base.update_times if part.per_update else 1)
    problem = Problem(options, bits, free, walks, update)
    weights = [(1.0, 0.0)] if objective == "energy" else _edp_weights(problem)
    plans: list[Plan] = []
    variables = solves = 0
    optimal, gap = True, 0.0
    for weight in weights:
        found = solve(problem, weight)
        solves += 1
        placement, chosen = found.placement, found.walks
        if found.status == "overflow":  # the plain plan, whose energy the caller refuses
            placement = {item: levels[0] for item, levels in options.items()}
            chosen = {key: walks_of[0][0] for key, walks_of in walks.items()}
        elif found.status == "infeasible" or (not chosen and walks):
            bad = next(iter(free))
            raise InputError(
                f"{chip.where(f'memories.{bad}.size_bytes')}: the tensors of rule "
                f"{rule.spec!r} at batch {batch_size} fit no placement on this chip; give a "
                "level more size_bytes or place tensors further out"
            )
        variables = max(variables, found.variables)
        gap = max(gap, found.gap if found.status == "limit" else 0.0)
        optimal = optimal and found.status in ("optimal", "overflow")
        plans.append(replace(base, placement={**fixed, **placement}, walks=chosen))
    plan = plans[0] if len(plans) == 1 else _best_simulated(workload, chip, plans, objective)
    from hwsim.sim.counting import step_traffic_bits  # counting builds on dataflow

    moved = step_traffic_bits(workload, chip, plan)
    intensity = {
        (r["tensor"], r["layer"]): moved.get((r["tensor"], r["layer"]), 0) / r["bits"] for r in rows
    }
    stats = SearchStats(
        objective,
        generated,
        feasible,
        kept,
        sum(len(v) > 1 for v in options.values()),
        variables,
        solves,
        time.perf_counter() - start,
        optimal,
        gap,
    )
    return replace(plan, accesses_per_bit=intensity, search=stats)


def _edp_weights(problem: Problem) -> list[tuple[float, float]]:
    """Weights of energy against cycles for the latency and energy-delay searches: from energy
    alone to cycles alone, each normalized by the other's typical size."""
    e = sum(c.fixed[0] for options in problem.walks.values() for _, c in options[:1]) or 1.0
    t = sum(c.fixed[1] for options in problem.walks.values() for _, c in options[:1]) or 1.0
    return [
        (1.0 / e, 0.0),
        (0.75 / e, 0.25 / t),
        (0.5 / e, 0.5 / t),
        (0.25 / e, 0.75 / t),
        (0.0, 1.0 / t),
    ]


def _best_simulated(workload: Workload, chip: Chip, plans: list[Plan], objective: str) -> Plan:
    """The plan best by ``objective`` as the SimPy replay and the prices measure it."""
    from hwsim.sim.counting import count_step
    from hwsim.sim.pricing import price
    from hwsim.sim.simulation import simulate_step

    best: tuple[float, int] | None = None
    for k, plan in enumerate(plans):
        cycles = simulate_step(workload, chip, plan).latency_cycles
        energy = price(count_step(workload, chip, plan), chip, cycles).total_pj
        score = cycles if objective == "latency" else energy * cycles
        if best is None or (score, k) < best:
            best = (score, k)
    assert best is not None
    return plans[best[1]]
