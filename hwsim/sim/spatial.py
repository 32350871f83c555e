"""The MAC array: how one fetch's MACs unroll over a unit's processing elements, the cycles
that takes, and the operand traffic between the innermost memory level and the array.

A unit that gives ``compute.<unit>.array`` (rows × cols processing elements, partial sums
``accumulator_bits`` wide) computes each fetch of a loop nest (docs/simulator.md, "Loop nests")
as a matrix product of three loops: ``out`` output channels, ``red`` reduced values (input
channels × kernel taps) and ``positions`` (samples × output positions). The dataflows
(docs/simulator.md, "The MAC array"):

* **weight-stationary** (forward, backward): the reduction runs down the rows, the output
  channels across the columns. Each element holds one weight, loaded once; every position's
  input slice enters the rows, broadcast along them; the columns sum their rows into the
  accumulators, written back and read again per block of the reduction.
  Cycles ``⌈out/cols⌉·⌈red/rows⌉·positions``.
* **output-stationary** (forward, backward): positions down the rows, output channels across
  the columns; each element keeps its output's sum for the whole reduction while inputs
  stream along the rows and weights down the columns (each weight once per block of
  positions). Cycles ``⌈positions/rows⌉·⌈out/cols⌉·red``.
* **output-stationary ΔW** (gradient): ΔW's block stays in the elements while every
  position's errors enter the rows and its inputs the columns.
  Cycles ``⌈out/rows⌉·⌈red/cols⌉·positions``.

Each fetch takes the dataflow whose operand traffic costs the least (then the fewest
cycles): a choice local to the fetch, since every operand move is at the innermost level.
Every operand value an element receives is read from that level (a broadcast value once for
its row or column) and every sum it gives back is written there: the operand moves
(:func:`operand_moves`), priced like any access, streamed while the array computes, so they
take no time of their own. A unit without an array is an ideal vector of ``macs_per_cycle``
lanes fed for free (``⌈MACs / lanes⌉`` cycles, no operand traffic), and compute-in-memory
arrays compute where the weights are (``hwsim.sim.cim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.core.workload import Layer, Workload
from hwsim.sim.chip import Chip, MacArray
from hwsim.sim.loops import Run, extent, shape
from hwsim.sim.moves import DRAIN, FEED, Move

#: the unit that computes each batch phase's MACs (docs/simulator.md, "Timing model")
PHASE_UNIT = {"forward": "forward", "backward": "error", "gradient": "update"}

#: the tensor an operand move names for the accumulators of a product in progress
PARTIAL_SUMS = "partial_sums"


@dataclass(frozen=True)
class Product:
    """One fetch's MACs as a matrix product: ``out`` × ``red`` × ``positions``."""

    out: int
    red: int
    positions: int

    @property
    def macs(self) -> int:
        """The product's MACs."""
        return self.out * self.red * self.positions


def product(layer: Layer, phase: str, run: Run) -> Product:
    """The matrix product of one fetch of ``run`` on ``layer`` (the layer the phase walks: the
    transposed one of a backward pass, DFA's D_l). Forward and gradient produce the tile's
    rows (output channels) from its columns × taps; backward sends errors to the columns from
    the rows × taps. Positions are the samples × output positions a tile's weight meets."""
    _, _, taps = shape(layer)
    tile = run.tile
    _, _, _, macs = extent(layer, tile)
    weights = tile.rows * tile.cols * taps
    positions = run.samples * (macs // weights if weights else 0)
    if phase == "backward":
        return Product(tile.cols, tile.rows * taps, positions)
    return Product(tile.rows, tile.cols * taps, positions)


def array_of(chip: Chip, phase: str) -> MacArray | None:
    """The MAC array of the unit that computes ``phase``, if the chip gives one."""
    return chip.arrays.get(PHASE_UNIT.get(phase, ""))


#: the dataflows the array can run a phase in, in the order ties are settled
DATAFLOWS = {
    "forward": ("weight_stationary", "output_stationary"),
    "backward": ("weight_stationary", "output_stationary"),
    "gradient": ("output_stationary",),
}


def cycles(array: MacArray, phase: str, p: Product, dataflow: str) -> int:
    """Cycles the array takes for product ``p`` in ``dataflow``: one per position (or, output-
    stationary, per reduced value) and block of the unrolled loops; a partial block's idle
    elements included (module docstring)."""
    if phase == "gradient":  # ΔW's rows down the rows, its columns across
        return math.ceil(p.out / array.rows) * math.ceil(p.red / array.cols) * p.positions
    if dataflow == "weight_stationary":
        return math.ceil(p.out / array.cols) * math.ceil(p.red / array.rows) * p.positions
    return math.ceil(p.positions / array.rows) * math.ceil(p.out / array.cols) * p.red


@dataclass(frozen=True)
class Operands:
    """Values one fetch moves between the innermost level and the array, by role."""

    #: how often the fetch's weights (W, its mirror, B, D) are read into the array
    weight_passes: int
    #: streamed values read: (inputs or errors entering the rows, those entering the columns)
    row_reads: int
    col_reads: int
    #: sums written back to the innermost level, and read from it again: the accumulators of
    #: a weight-stationary product per block of the reduction; the outputs an output-
    #: stationary forward or backward product drains once; ΔW's block (read back first unless
    #: the fetch starts it)
    sum_writes: int
    sum_reads: int


def operands(array: MacArray, phase: str, p: Product, dataflow: str, *, first: bool) -> Operands:
    """The operand traffic of product ``p`` in ``dataflow`` (module docstring). ``first``: a
    gradient fetch that starts ΔW's block (no earlier partial ΔW to read back)."""
    if phase == "gradient":
        # ΔW's block stays in the elements for every position: errors (rows) and inputs
        # (columns) are read once per block of the other side
        row_blocks, col_blocks = math.ceil(p.out / array.rows), math.ceil(p.red / array.cols)
        block = p.out * p.red
        return Operands(
            weight_passes=0,
            row_reads=p.positions * p.out * col_blocks,
            col_reads=p.positions * p.red * row_blocks,
            sum_writes=block,
            sum_reads=0 if first else block,
        )
    col_blocks = math.ceil(p.out / array.cols)
    sums = p.positions * p.out
    if dataflow == "weight_stationary":
        # every weight loaded once; each input slice read once per block of output channels;
        # each output's sum written per block of the reduction, read back after its first
        row_blocks = math.ceil(p.red / array.rows)
        return Operands(
            weight_passes=1,
            row_reads=p.positions * p.red * col_blocks,
            col_reads=0,
            sum_writes=sums * row_blocks,
            sum_reads=sums * (row_blocks - 1),
        )
    # output-stationary: positions down the rows, output channels across; the sums stay in
    # the elements over the whole reduction; each input read once per block of output
    # channels, each weight once per block of positions
    return Operands(
        weight_passes=math.ceil(p.positions / array.rows),
        row_reads=p.positions * p.red * col_blocks,
        col_reads=0,
        sum_writes=sums,
        sum_reads=0,
    )


def utilization(array: MacArray, macs: int, cycles: int) -> float:
    """The fraction of the array's element-cycles in ``cycles`` that do one of ``macs``."""
    spent = cycles * array.rows * array.cols
    return macs / spent if spent else 0.0


def operand_moves(
    chip: Chip,
    array: MacArray,
    workload: Workload,
    phase: str,
    i: int,
    source: int,
    run: Run,
    walked: Layer,
    fetched: list[Move],
) -> tuple[list[Move], int, str]:
    """What the innermost level feeds the MAC array for one fetch of ``run`` and takes back
    from it, the array's cycles and the dataflow: of :data:`DATAFLOWS`, the one whose operand
    moves cost the least there, then the fewest cycles. ``walked``: the layer the phase walks;
    ``source``: the layer whose errors a backward fetch reads; ``fetched``: the fetch's own
    moves (its block of weights is what the elements load)."""
    inner = chip.memories[0]
    p = product(walked, phase, run)
    streams = streamed_tensors(workload, phase, i, source)
    # the block of weights the fetch brought (W, its mirror, B, D or signs), read into the
    # elements; regenerated feedback goes from the PRNG straight to them
    weights = [
        (m.tensor, m.link_bits or m.bits)
        for m in fetched
        if m.level is not None and m.tensor in _WEIGHT_TENSORS and m.direction != "write"
    ]
    sums, sum_bits = (
        ("gradients", chip.gradient_bits)
        if phase == "gradient"
        else (PARTIAL_SUMS, array.accumulator_bits)
    )
    prices = {FEED: inner.access_energy_pj(FEED), DRAIN: inner.access_energy_pj(DRAIN)}
    best: tuple[float, int, int] | None = None
    chosen: list[tuple[str, str, int]] = []
    for k, dataflow in enumerate(DATAFLOWS[phase]):
        ops = operands(array, phase, p, dataflow, first=run.first)
        # (tensor, direction, bits) of every operand move of this dataflow
        out = [(t, FEED, bits * ops.weight_passes) for t, bits in weights]
        out.append((sums, FEED, ops.sum_reads * sum_bits))
        out.append((sums, DRAIN, ops.sum_writes * sum_bits))
        for (tensor, bits), values in zip(streams, (ops.row_reads, ops.col_reads), strict=False):
            out.append((tensor, FEED, values * bits))
        out = [o for o in out if o[2]]
        energy = sum(inner.words_and_accesses(b)[1] * prices[d] for _, d, b in out)
        rank = (energy, cycles(array, phase, p, dataflow), k)
        if best is None or rank < best:
            best, chosen = rank, out
    assert best is not None
    moves = [Move(inner.name, t, None, d, b, operand=True) for t, d, b in chosen]
    return moves, best[1], DATAFLOWS[phase][best[2]]


#: tensors a forward or backward fetch loads into the array's elements
_WEIGHT_TENSORS = frozenset({"weights", "weight_mirror", "feedback_weights"})


def streamed_tensors(workload: Workload, phase: str, i: int, source: int) -> list[tuple[str, int]]:
    """(tensor, bits per value) of the values entering the rows, then the columns: forward
    the layer's inputs; backward the incoming errors (of layer ``source``); gradient the
    layer's errors (rows) and inputs (columns)."""
    layer = workload.layers[i]
    if phase == "forward":
        return [("activations", layer.activation_bits)]
    if phase == "backward":
        return [("errors", workload.layers[source].error_bits)]
    return [("errors", layer.error_bits), ("activations", layer.activation_bits)]
