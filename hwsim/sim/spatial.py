"""The MAC array: how one fetch's MACs unroll over a unit's processing elements, the cycles
that takes, and the operand traffic between the innermost memory level and the array.

A unit that gives ``compute.<unit>.array`` (rows × cols processing elements, partial sums
``accumulator_bits`` wide) computes each fetch of a loop nest (docs/simulator.md, "Loop nests")
as a matrix product of three loops: ``out`` output channels, ``red`` reduced values (input
channels × kernel taps) and ``positions`` (samples × output positions). Two dataflows, fixed
by the phase (docs/simulator.md, "The MAC array"):

* forward and backward, **weight-stationary**: the reduction runs down the rows, the output
  channels across the columns. Each element holds one weight of an ``rows × cols`` block of
  the fetch's weights, loaded once; every position's input slice enters the rows and is
  broadcast along them to every column; the columns sum their rows and add into the
  accumulators. Cycles ``⌈out/cols⌉·⌈red/rows⌉·positions``.
* gradient, **output-stationary**: ΔW's ``rows × cols`` block stays in the elements while
  every position's errors enter the rows and its inputs the columns, each broadcast along
  its side. Cycles ``⌈out/rows⌉·⌈red/cols⌉·positions``.

The innermost level feeds the array: every operand value an element receives is read from it
(a broadcast value once for its row or column), and every partial sum is written back to it
and read again for the next block of the reduction. These are the operand moves
(:func:`operand_moves`): priced like any access of that level, streamed while the array
computes, so they take no time of their own. A unit without an array is an ideal vector of
``macs_per_cycle`` lanes fed for free (``⌈MACs / lanes⌉`` cycles, no operand traffic), and
compute-in-memory arrays compute where the weights are (``hwsim.sim.cim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.core.workload import Layer, Workload
from hwsim.sim.chip import Chip, MacArray
from hwsim.sim.loops import Run, extent, shape

#: the unit that computes each phase (docs/simulator.md, "Units and pipelining")
PHASE_UNIT = {"forward": "forward", "backward": "error", "gradient": "update"}

#: the stationary operand of each phase: what each element holds while the others stream
STATIONARY = {"forward": "weights", "backward": "weights", "gradient": "gradients"}

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


def cycles(array: MacArray, phase: str, p: Product) -> int:
    """Cycles the array takes for product ``p``: each block of the unrolled loops, one cycle
    per position (module docstring); partial blocks waste their idle elements."""
    if phase == "gradient":
        return math.ceil(p.out / array.rows) * math.ceil(p.red / array.cols) * p.positions
    return math.ceil(p.out / array.cols) * math.ceil(p.red / array.rows) * p.positions


@dataclass(frozen=True)
class Operands:
    """Values one fetch moves between the innermost level and the array, by role."""

    #: the stationary block's values read into the elements (weights, or ΔW read back)
    stationary_reads: int
    #: streamed values read: (inputs or errors entering the rows, those entering the columns)
    row_reads: int
    col_reads: int
    #: accumulator values written back, and read again for the next block of the reduction
    sum_writes: int
    sum_reads: int


def operands(array: MacArray, phase: str, p: Product, *, first: bool) -> Operands:
    """The operand traffic of product ``p`` (module docstring). ``first``: a gradient fetch
    that starts ΔW's block (no earlier partial ΔW to read back)."""
    if phase == "gradient":
        # ΔW's block stays in the elements for every position: errors (rows) and inputs
        # (columns) are read once per block of the other side; ΔW written once, read back
        # first unless this fetch starts it
        row_blocks, col_blocks = math.ceil(p.out / array.rows), math.ceil(p.red / array.cols)
        block = p.out * p.red
        return Operands(
            stationary_reads=0 if first else block,
            row_reads=p.positions * p.out * col_blocks,
            col_reads=p.positions * p.red * row_blocks,
            sum_writes=block,
            sum_reads=0,
        )
    # weight-stationary: every weight loaded once; each input slice read once per block of
    # output channels; each output's sum written per block of the reduction, and read back
    # for every block after its first
    col_blocks, row_blocks = math.ceil(p.out / array.cols), math.ceil(p.red / array.rows)
    sums = p.positions * p.out
    return Operands(
        stationary_reads=p.out * p.red,
        row_reads=p.positions * p.red * col_blocks,
        col_reads=0,
        sum_writes=sums * row_blocks,
        sum_reads=sums * (row_blocks - 1),
    )


def utilization(array: MacArray, phase: str, p: Product) -> float:
    """The fraction of the array's element-cycles that do a MAC."""
    spent = cycles(array, phase, p) * array.rows * array.cols
    return p.macs / spent if spent else 0.0


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
