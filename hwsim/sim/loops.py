"""Loop orders: how one phase of one layer walks the batch and its stationary tensor.

Each batch phase of a layer multiplies a *stationary* tensor of R rows × C columns × K kernel
taps (``weight_shape`` = [R, C, taps…]) with two tensors *streamed* per sample:

=========  =====================================  ==================  ====================
phase      stationary tensor                      row side (R: out)   column side (C: in)
=========  =====================================  ==================  ====================
forward    W, read                                y, written          x, read
backward   W carried, BP's mirror, B or PRNG B    e_out, read         e_in, written
gradient   ΔW, written (read back to accumulate)  e, read             x, read
=========  =====================================  ==================  ====================

A :class:`Walk` is the loop nest: the batch cut into *groups* of samples and the stationary
tensor cut into *tiles*. Every (group, tile) pair is one *fetch*: the tile's bits move once, and
the group's samples move the slices of their streamed tensors that the tile touches (row side:
the tile's rows; column side: its columns). Two canonical orders exist:

* ``batch_outer`` — groups of ``r`` samples outside, the whole stationary tensor inside, streamed
  once per group: the stationary tensor moves ⌈N/r⌉ times, each sample's tensors once. ``r`` is
  what the innermost memory holds of both streamed tensors of one sample (or the chip's
  ``samples_per_weight_fetch``). For the gradient this is ΔW read-modify-written per group.
* ``weight_outer`` — tiles of the stationary tensor that fit in the innermost memory outside, the
  whole batch inside: the stationary tensor moves once (ΔW is accumulated on chip and written
  once, never read back), and one streamed side is re-read once per tile. The forward pass tiles
  whole rows (each output finishes inside its tile), the backward pass whole columns (each
  error sent down finishes inside its tile); the gradient may tile either way, and cuts a row
  (or column) into pieces when one does not fit.

``per_sample`` is ``batch_outer`` with groups of one sample, the order of ``training.update:
fused``, where the weights change after every sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hwsim.core.workload import Layer

#: The phases that walk the batch (and take a loop order), in step order.
BATCH_PHASES = ("forward", "backward", "gradient")


def orders_taken(loop_orders: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, int]]:
    """Phase → loop order → how many layers took it, from ``RuleResult.loop_orders``
    (``{layer: {phase: description}}``, each description starting ``order:``)."""
    taken: dict[str, dict[str, int]] = {phase: {} for phase in BATCH_PHASES}
    for by_phase in loop_orders.values():
        for phase, described in by_phase.items():
            name = str(described).split(":")[0]
            taken[phase][name] = taken[phase].get(name, 0) + 1
    return taken


@dataclass(frozen=True)
class Tile:
    """A block of the stationary tensor: ``rows`` × ``cols`` (× all kernel taps).

    ``bias``: the tile ends its rows, so it also holds their bias (W and ΔW have one).
    """

    rows: int
    cols: int
    bias: bool


@dataclass(frozen=True)
class Run:
    """``count`` identical fetches: a tile with a group of ``samples``.

    ``first``: each of these fetches is its tile's first (ΔW is written, not read back, then).
    """

    samples: int
    tile: Tile
    first: bool
    count: int


@dataclass(frozen=True)
class Walk:
    """The loop order of one (phase, layer): groups of samples × tiles, as run lengths."""

    order: str
    #: (samples in a group, how many such groups), in loop order
    groups: tuple[tuple[int, int], ...]
    #: (tile, how many such tiles), in loop order
    tiles: tuple[tuple[Tile, int], ...]
    #: the streamed side a ``weight_outer`` walk re-reads per tile: ``row``, ``column``, or
    #: ``both`` when rows are cut into pieces
    tiled_by: str = ""

    @property
    def group_count(self) -> int:
        """Groups of samples: how often every tile is fetched."""
        return sum(count for _, count in self.groups)

    @property
    def tile_count(self) -> int:
        """Tiles of the stationary tensor."""
        return sum(count for _, count in self.tiles)

    @property
    def fetches(self) -> int:
        """(group, tile) pairs: fetches of a tile of the stationary tensor."""
        return self.group_count * self.tile_count

    def runs(self) -> list[Run]:
        """The fetches in loop order, as runs of identical ones.

        A ``weight_outer`` walk has one group (the whole batch), so every fetch is its tile's
        first; the other orders have one tile (the whole tensor), fetched first by group 0.
        """
        if self.order == "weight_outer":
            ((n, _),) = self.groups
            return [Run(n, tile, True, count) for tile, count in self.tiles]
        ((tile, _),) = self.tiles
        out: list[Run] = []
        for n, count in self.groups:
            if not out:
                out.append(Run(n, tile, True, 1))
                count -= 1
            if count:
                out.append(Run(n, tile, False, count))
        return out

    def pieces(self, k: int) -> list[list[Run]]:
        """The runs cut into ``k`` consecutive pieces of about equal fetch counts."""
        runs = self.runs()
        out: list[list[Run]] = []
        at, used = 0, 0  # the current run, and how many of its fetches are handed out
        for start, stop in cut(self.fetches, k):
            piece: list[Run] = []
            need = stop - start
            while need:
                run = runs[at]
                take = min(need, run.count - used)
                piece.append(Run(run.samples, run.tile, run.first, take))
                need -= take
                used += take
                if used == run.count:
                    at, used = at + 1, 0
            out.append(piece)
        return out

    def coverage(self, k: int) -> list[tuple[int, int]]:
        """Per piece of :meth:`pieces`: (samples touched, samples finished) once it is done.

        A sample is finished in this phase when every tile has been fetched for its group.
        """
        sizes = [n for n, count in self.groups for _ in range(count)]
        out = []
        for _, stop in cut(self.fetches, k):
            if self.order == "weight_outer":  # one group: touched at once, done at the end
                batch = sizes[0]
                out.append((batch if stop else 0, batch if stop == self.fetches else 0))
            else:  # one tile: fetch f is group f
                done = sum(sizes[:stop])
                out.append((done, done))
        return out

    def describe(self) -> str:
        """One line for people: the order, its groups and tiles."""
        if self.order == "weight_outer":
            side = {"row": ", row side", "column": ", column side", "both": ", both sides"}.get(
                self.tiled_by, ""
            )
            side += " re-read per tile" if side else ""
            return f"weight_outer: {self.tile_count} tile(s), whole batch inside{side}"
        size, groups = self.groups[0][0], self.group_count
        return f"{self.order}: {groups} group(s) of ≤{size} sample(s), whole tensor inside"


def run_lengths(total: int, size: int) -> tuple[tuple[int, int], ...]:
    """``total`` cut into pieces of ``size``: (size, count) and the smaller remainder."""
    full, rest = divmod(total, size)
    return tuple((s, c) for s, c in ((size, full), (rest, 1 if rest else 0)) if c)


def shape(layer: Layer) -> tuple[int, int, int]:
    """(R, C, K): rows, columns and kernel taps of the layer's weight."""
    rows = layer.weight_shape[0]
    cols = layer.weight_shape[1] if len(layer.weight_shape) > 1 else 1
    return rows, cols, math.prod(layer.weight_shape[2:])


def tileable(layer: Layer) -> bool:
    """Whether streamed tensors split evenly by rows and columns (weight_outer is possible).

    True for dense and ungrouped convolution layers: each output row (channel) has the same
    number of outputs, each input column (channel) the same number of inputs, and every MAC
    pairs one weight with one input.
    """
    rows, cols, taps = shape(layer)
    return (
        layer.output_elements % rows == 0
        and layer.input_elements % cols == 0
        and layer.macs_per_sample == rows * cols * taps * (layer.output_elements // rows)
    )


def per_row(layer: Layer) -> int:
    """Streamed row-side elements of one sample per row (outputs per output channel)."""
    return layer.output_elements // shape(layer)[0]


def per_col(layer: Layer) -> int:
    """Streamed column-side elements of one sample per column (inputs per input channel)."""
    return layer.input_elements // shape(layer)[1]


def batch_outer(batch: int, r: int, layer: Layer, order: str = "batch_outer") -> Walk:
    """Groups of ``r`` samples outside, the whole stationary tensor inside."""
    rows, cols, _ = shape(layer)
    return Walk(order, run_lengths(batch, max(1, min(r, batch))), ((Tile(rows, cols, True), 1),))


def weight_outer(
    batch: int, layer: Layer, element_bits: int, capacity_bits: int, by: str, bias: bool
) -> Walk | None:
    """Tiles of the stationary tensor that fit ``capacity_bits`` outside, the batch inside.

    ``by="row"`` keeps whole rows together (a tile of ρ rows re-reads the column side once);
    a row that does not fit is cut into pieces of columns, one row at a time, which re-read the
    row side once per piece as well. ``by="column"`` keeps whole columns together (re-reading
    the row side once per tile) and returns None where one column does not fit. Forward and
    backward never cut (their outputs would stay partial sums): callers pass ``by`` accordingly
    and treat a cut walk (``tiled_by == "both"``) as not allowed. ``element_bits`` is the
    stored width of one element; ``bias``: the tensor has the layer's bias (W and ΔW do, a
    mirror or B does not), one more element per row held by the tile that ends the row.
    """
    rows, cols, taps = shape(layer)
    extra = element_bits if bias and layer.bias else 0  # a row's bias
    groups = ((batch, 1),)
    if by == "row":
        row_bits = cols * taps * element_bits + extra
        if row_bits <= capacity_bits:
            tiles = tuple(
                (Tile(size, cols, True), count)
                for size, count in run_lengths(rows, capacity_bits // row_bits)
            )
            return Walk("weight_outer", groups, tiles, tiled_by="column")
        piece = (capacity_bits - extra) // (taps * element_bits)
        if piece < 1:
            return None
        per_row_tiles = _last_flagged(run_lengths(cols, piece))
        tiles = tuple((Tile(1, size, last), count * rows) for size, count, last in per_row_tiles)
        return Walk("weight_outer", groups, tiles, tiled_by="both")
    col_bits = rows * taps * element_bits
    if col_bits + rows * extra > capacity_bits:
        return None
    size = (capacity_bits - rows * extra) // col_bits
    tiles = tuple(
        (Tile(rows, s, last), count) for s, count, last in _last_flagged(run_lengths(cols, size))
    )
    return Walk("weight_outer", groups, tiles, tiled_by="row")


def _last_flagged(lengths: tuple[tuple[int, int], ...]) -> list[tuple[int, int, bool]]:
    """Run lengths with the very last element split off and flagged (it ends the row)."""
    *head, (size, count) = lengths
    out = [(s, c, False) for s, c in head]
    if count > 1:
        out.append((size, count - 1, False))
    return [*out, (size, 1, True)]


def cut(count: int, pieces: int) -> list[tuple[int, int]]:
    """``range(count)`` cut into ``pieces`` consecutive [start, stop) slices (some may be empty)."""
    return [(j * count // pieces, (j + 1) * count // pieces) for j in range(pieces)]
