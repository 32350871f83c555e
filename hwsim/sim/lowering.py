"""Lowering a step into tasks: one unit, one phase, one layer, one pipeline piece each, with the
transfers it loads and stores; the SimPy simulation (``hwsim.sim.simulation``) executes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwsim.core.workload import Workload
from hwsim.sim.chip import Chip
from hwsim.sim.dataflow import (
    INIT_PHASE,
    Plan,
    fetch_cycles,
    fetch_moves,
    mac_format,
)
from hwsim.sim.loops import Walk
from hwsim.sim.moves import Move, move_accesses
from hwsim.sim.updates import init_moves, loss_moves, update_parts

# ---------------------------------------------------------------------------------------------
# lowering into tasks


@dataclass(frozen=True)
class Transfer:
    """A movement of one tensor at one memory level (``level`` None: generated, no memory)."""

    level: str | None
    tensor: str
    direction: str
    bits: int
    words: int
    accesses: int
    fetches: int
    link_bits: int = 0
    generated_values: int = 0
    #: cycles a compute-in-memory level is busy with it, or a digital level with a scattered
    #: write (its accesses' time); 0 on every other digital transfer: bits and fetches set its
    #: time
    cycles: int = 0
    #: an operand streamed between the innermost level and the MAC array while it computes:
    #: counted, no time of its own
    operand: bool = False


@dataclass(frozen=True)
class Task:
    """One unit's work on one layer in one phase for one pipeline piece: load, compute, store."""

    unit: str
    phase: str
    layer: int
    chunk: int
    loads: tuple[Transfer, ...]
    macs: int
    stores: tuple[Transfer, ...]
    #: number format the MACs run in, promoted from their operands' (prices the MACs)
    operand_format: str = ""
    #: cycles the unit's MAC array takes for them (``hwsim.sim.spatial``); 0: the unit has
    #: no array, its lanes take ⌈MACs / macs_per_cycle⌉
    compute_cycles: int = 0


def aggregate(chip: Chip, moves: list[tuple[Move, int]]) -> list[Transfer]:
    """(move, times) pairs summed into one transfer per (level, tensor, direction, link).

    Words and accesses round up per fetch: a move of b bits is ⌈b / word⌉ words, in
    ⌈words / burst⌉ accesses, every time it happens.
    """
    merged: dict[tuple[Any, ...], list[int]] = {}
    for move, times in moves:
        key = (move.level, move.tensor, move.direction, bool(move.link_bits), move.operand)
        words, accesses = move_accesses(chip, move)
        tally = merged.get(key)
        if tally is None:
            tally = merged[key] = [0, 0, 0, 0, 0, 0, 0]
        tally[0] += move.bits * times
        tally[1] += words * times
        tally[2] += accesses * times
        tally[3] += times
        tally[4] += move.link_bits * times
        tally[5] += move.generated_values * times
        tally[6] += (move.cycles or 0) * times
    return [
        Transfer(
            level,
            tensor,
            direction,
            bits=v[0],
            words=v[1],
            accesses=v[2],
            fetches=v[3],
            link_bits=v[4],
            generated_values=v[5],
            cycles=v[6],
            operand=operand,
        )
        for (level, tensor, direction, _, operand), v in merged.items()
    ]


def _task(
    chip: Chip,
    unit: str,
    phase: str,
    i: int,
    c: int,
    moves: list[tuple[Move, int]],
    macs: int,
    fmt: str,
    compute_cycles: int = 0,
) -> Task:
    loads: list[tuple[Move, int]] = []
    stores: list[tuple[Move, int]] = []
    for pair in moves:
        move = pair[0]
        # data passing through a level (a mirror synchronized via DRAM) moves after the compute
        late = move.direction == "write" or (move.owner is None and move.level is not None)
        (stores if late else loads).append(pair)
    return Task(
        unit,
        phase,
        i,
        c,
        tuple(aggregate(chip, loads)),
        macs,
        tuple(aggregate(chip, stores)),
        fmt,
        compute_cycles,
    )


@dataclass(frozen=True)
class Lowered:
    """A step's tasks: per pipeline piece (in unit order), and the final accumulated updates."""

    pieces: list[list[Task]]
    updates: list[Task]


def lower_step(workload: Workload, chip: Chip, plan: Plan) -> Lowered:
    """The tasks of one training step, cut into the plan's pipeline pieces.

    Piece ``c`` holds, in order: forward tasks (layer 0 up), the loss error, backward tasks
    (top layer down to layer 1), gradient tasks (top down), and with a fused update the
    updates of its samples (top down). An accumulated update runs once, after every piece.
    Each (phase, layer)'s fetches are cut into the pieces in loop order; a piece where a phase
    has no fetch has no task for it.
    """
    layers, k = workload.layers, plan.pieces
    top = len(layers) - 1
    pieces: list[list[Task]] = [[] for _ in range(k)]

    def add(unit: str, phase: str, i: int, walk: Walk) -> None:
        for c, runs in enumerate(walk.pieces(k)):
            moves: list[tuple[Move, int]] = []
            macs = cycles = 0
            for run in runs:
                fetch, fetch_macs = fetch_moves(workload, chip, plan, phase, i, run)
                moves += [(m, run.count) for m in fetch]
                macs += fetch_macs * run.count
                cycles += fetch_cycles(workload, chip, plan, phase, i, run) * run.count
            if moves:
                fmt = mac_format(workload, chip, plan, phase, i)
                pieces[c].append(_task(chip, unit, phase, i, c, moves, macs, fmt, cycles))

    for i in range(top + 1):
        add("forward", "forward", i, plan.walks[("forward", i)])
    for c, runs in enumerate(plan.loss_walk.pieces(k)):
        moves = [(m, r.count) for r in runs for m in loss_moves(workload, plan, r)]
        if moves:
            pieces[c].append(_task(chip, "error", "backward", top, c, moves, 0, ""))
    for i in range(top, 0, -1):
        add("error", "backward", i, plan.walks[("backward", i)])
    for i in range(top, -1, -1):
        add("update", "gradient", i, plan.walks[("gradient", i)])
    updates: list[Task] = []
    if plan.update == "fused":
        loss_sizes = [sum(r.samples * r.count for r in runs) for runs in plan.loss_walk.pieces(k)]
        last = max(c for c, samples in enumerate(loss_sizes) if samples)
        for c, samples in enumerate(loss_sizes):
            for i in range(top, -1, -1):
                pieces[c] += _update_tasks(workload, chip, plan, i, c, samples, c == last)
    else:
        for i in range(top, -1, -1):
            updates += _update_tasks(workload, chip, plan, i, 0, 1, True)
    return Lowered(pieces, updates)


def _update_tasks(
    workload: Workload, chip: Chip, plan: Plan, i: int, c: int, times: int, once: bool
) -> list[Task]:
    """Layer i's update tasks of piece ``c``: each :func:`update_parts` part repeated with every
    update ``times`` times (one per sample of the piece if fused, else once); the once-per-step
    parts only where ``once``."""
    tasks = []
    for part in update_parts(workload, chip, plan, i):
        if not (part.per_update or once):
            continue
        n = times if part.per_update else 1
        pairs = [(m, n) for m in part.moves]
        tasks.append(_task(chip, "update", "update", i, c, pairs, part.macs * n, part.mac_format))
    return tasks


def lower_init(workload: Workload, chip: Chip, plan: Plan) -> list[Task]:
    """The one-time init tasks of a rule (IFA's alignment, BP's first mirror copy, FA's B)."""
    tasks = []
    for i in range(len(workload.layers)):
        moves = init_moves(workload, chip, plan, i)
        if moves:
            tasks.append(_task(chip, "init", INIT_PHASE, i, 0, [(m, 1) for m in moves], 0, ""))
    return tasks
