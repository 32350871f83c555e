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

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    """A block of the stationary tensor: ``rows`` × ``cols`` (× all kernel taps), over
    ``out_rows`` rows of a convolution's output feature map (0: all of them).

    ``bias``: the tile ends its rows, so it also holds their bias (W and ΔW have one).
    ``halo``: a spatial tile after a sample's first; in the backward pass the rows of the error
    it sends down that overlap the previous tile's (a kernel taller than its stride) are
    partial sums, read back before they are written again.
    """

    rows: int
    cols: int
    bias: bool
    out_rows: int = 0
    halo: bool = False
    #: a block after its group's first: the streamed side the blocks do not cut (the inputs
    #: of row blocks, the incoming errors of column blocks) is already in the innermost level
    resident: bool = False


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
    """The loop nest of one (phase, layer): groups of samples × tiles, as run lengths.

    ``batch_outer``: for each group, for each tile (the tiles of a ``batch_outer`` walk are the
    spatial tiles of the whole stationary tensor, which streams through once per tile).
    ``weight_outer``: for each tile of the stationary tensor, held in the innermost level, the
    whole batch (one group) streams through once.
    """

    order: str
    #: (samples in a group, how many such groups), in loop order
    groups: tuple[tuple[int, int], ...]
    #: (tile, how many such tiles), in loop order (per group)
    tiles: tuple[tuple[Tile, int], ...]
    #: the streamed side a ``weight_outer`` walk re-reads per tile: ``row``, ``column``, or
    #: ``both`` when rows are cut into pieces
    tiled_by: str = ""
    #: bits the walk keeps in the innermost level at once (its working set)
    working_bits: int = 0

    @property
    def group_count(self) -> int:
        """Groups of samples: how often every tile is fetched."""
        return sum(count for _, count in self.groups)

    @property
    def tile_count(self) -> int:
        """Tiles per group."""
        return sum(count for _, count in self.tiles)

    @property
    def fetches(self) -> int:
        """(group, tile) pairs: fetches of a tile of the stationary tensor."""
        return self.group_count * self.tile_count

    def runs(self) -> list[Run]:
        """The fetches in loop order, as runs of identical ones.

        A ``weight_outer`` walk has one group (the whole batch), so every fetch is its tile's
        first; a ``batch_outer`` walk fetches the first of its tiles first once, by group 0.
        """
        if self.order == "weight_outer":
            ((n, _),) = self.groups
            return [Run(n, tile, True, count) for tile, count in self.tiles]
        out: list[Run] = []
        for g, (n, count) in enumerate(self.groups):
            for k in range(count):
                for tile, tiles in self.tiles:
                    # ΔW is written, not read back, by the first fetch of each block of the
                    # stationary tensor: group 0, the block's first spatial tile
                    first = g == k == 0 and not tile.halo
                    last = out[-1] if out else None
                    if last is not None and (last.samples, last.tile, last.first) == (
                        n,
                        tile,
                        first,
                    ):
                        out[-1] = Run(n, tile, first, last.count + tiles)
                    else:
                        out.append(Run(n, tile, first, tiles))
        return out

    def fetch_classes(self) -> list[Run]:
        """The same fetches as :meth:`runs`, as few runs as possible and not in loop order
        (what counting needs: identical fetches of every group together)."""
        if self.order == "weight_outer":
            return self.runs()
        # every group fetches the same tiles: count each distinct one once (in order of first
        # appearance, which is the order the classes come in)
        totals: dict[Tile, int] = {}
        for tile, tiles in self.tiles:
            totals[tile] = totals.get(tile, 0) + tiles
        tally: dict[tuple[int, Tile, bool], int] = {}
        for g, (n, count) in enumerate(self.groups):
            for tile, tiles in totals.items():
                if g == 0:  # the first group holds each block's first fetch
                    key = (n, tile, not tile.halo)
                    tally[key] = tally.get(key, 0) + tiles
                    after = tiles * (count - 1)
                else:
                    after = tiles * count
                if after:
                    key = (n, tile, False)
                    tally[key] = tally.get(key, 0) + after
        return [Run(n, tile, first, count) for (n, tile, first), count in tally.items()]

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
        per_group = self.tile_count
        out = []
        for _, stop in cut(self.fetches, k):
            if self.order == "weight_outer":  # one group: touched at once, done at the end
                batch = sizes[0]
                out.append((batch if stop else 0, batch if stop == self.fetches else 0))
            else:  # fetch f is tile f % T of group f // T
                done = sum(sizes[: stop // per_group])
                touched = sum(sizes[: -(-stop // per_group)])
                out.append((touched, done))
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
        blocks = sum(count for tile, count in self.tiles if not tile.halo)
        spatial = self.tile_count // blocks
        inside = "whole tensor inside" if blocks == 1 else f"tensor in {blocks} block(s) inside"
        if spatial > 1:
            rows = self.tiles[0][0].out_rows
            inside += f", {spatial} spatial tile(s) of ≤{rows} output row(s) each"
        return f"{self.order}: {groups} group(s) of ≤{size} sample(s), {inside}"

    def to_dict(self) -> dict[str, object]:
        """The loop nest as JSON: order, groups and tiles (run lengths), working set."""
        return {
            "order": self.order,
            "groups": [{"samples": n, "count": c} for n, c in self.groups],
            "tiles": [
                {
                    "rows": t.rows,
                    "cols": t.cols,
                    "out_rows": t.out_rows,
                    "bias": t.bias,
                    "halo": t.halo,
                    "resident": t.resident,
                    "count": c,
                }
                for t, c in self.tiles
            ],
            "tiled_by": self.tiled_by,
            "fetches": self.fetches,
            "working_bits": self.working_bits,
        }


@dataclass(frozen=True)
class Geometry:
    """A convolution's feature maps, kernel and stride, in rows (height) and columns (width).

    The workload records shapes, not strides: the stride is ⌊input / output⌉ rows (the layers
    of every network here pad to keep ``output = ⌈input / stride⌉``).
    """

    in_rows: int
    in_cols: int
    out_rows: int
    out_cols: int
    k_rows: int
    k_cols: int
    s_rows: int
    s_cols: int

    def inputs_touched(self, out_rows: int) -> int:
        """Input pixels (of one channel) that ``out_rows`` consecutive output rows read."""
        return touched(out_rows, self.k_rows, self.s_rows, self.in_rows) * self.cols_touched

    @property
    def cols_touched(self) -> int:
        """Input columns (of one channel) a whole output row reads."""
        return touched(self.out_cols, self.k_cols, self.s_cols, self.in_cols)

    @property
    def overlap_rows(self) -> int:
        """Input rows two consecutive spatial tiles share (a kernel taller than its stride)."""
        return max(0, min(self.k_rows - self.s_rows, self.in_rows))


def touched(outputs: int, kernel: int, stride: int, inputs: int) -> int:
    """Input positions ``outputs`` consecutive outputs of a 1-D convolution read: windows of
    ``kernel`` every ``stride`` (overlapping where kernel ≥ stride, gaps where it is less),
    at most the ``inputs`` there are."""
    span = (outputs - 1) * stride + kernel if kernel >= stride else outputs * kernel
    return min(inputs, span)


@functools.lru_cache(maxsize=4096)
def geometry(layer: Layer) -> Geometry | None:
    """The spatial geometry of an ungrouped 2-D convolution, None for any other layer."""
    w, x, y = layer.weight_shape, layer.input_shape, layer.output_shape
    if len(w) != 4 or len(x) != 3 or len(y) != 3 or not tileable(layer):
        return None
    return Geometry(
        x[1], x[2], y[1], y[2], w[2], w[3], max(1, round(x[1] / y[1])), max(1, round(x[2] / y[2]))
    )


def ladder(n: int) -> list[int]:
    """Sizes that cut ``n`` into a distinct number of pieces (⌈n / k⌉ for k = 1…n), largest
    first: every way of tiling ``n`` with equal pieces (and a smaller last one) up to the
    piece count, independent of any capacity."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def spatial_tiles(
    layer: Layer, out_rows: int, rows: int, cols: int
) -> tuple[tuple[Tile, int], ...]:
    """The whole stationary tensor (``rows`` × ``cols``) over spatial tiles of ``out_rows``
    output rows: the first tile of a sample, then the ones after it (``halo``)."""
    geo = geometry(layer)
    total = geo.out_rows if geo is not None else 0
    if geo is None or out_rows >= total:
        return ((Tile(rows, cols, True), 1),)
    out: list[tuple[Tile, int]] = []
    for size, count in run_lengths(total, out_rows):
        if not out:
            out.append((Tile(rows, cols, True, size), 1))
            count -= 1
        if count:
            out.append((Tile(rows, cols, True, size, halo=True), count))
    return tuple(out)


def extent(layer: Layer, tile: Tile) -> tuple[int, int, int, int]:
    """(weight elements, row-side elements, column-side elements, MACs) of a tile, per sample.

    A convolution's column side is the inputs its tile's output rows touch (a strided kernel
    smaller than its stride skips the rest; a spatial tile reads its halo). A whole-tensor tile
    of any other layer takes the layer's own totals, so layers that cannot be tiled (grouped
    convolutions) are counted exactly too.
    """
    rows, cols, taps = shape(layer)
    geo = geometry(layer)
    if geo is not None:
        out_rows = tile.out_rows or geo.out_rows
        outputs = out_rows * geo.out_cols
        return (
            tile.rows * tile.cols * taps,
            tile.rows * outputs,
            tile.cols * geo.inputs_touched(out_rows),
            tile.rows * tile.cols * taps * outputs,
        )
    if (tile.rows, tile.cols) == (rows, cols):
        return (
            layer.weight_elements,
            layer.output_elements,
            layer.input_elements,
            layer.macs_per_sample,
        )
    return (
        tile.rows * tile.cols * taps,
        tile.rows * per_row(layer),
        tile.cols * per_col(layer),
        tile.rows * tile.cols * taps * per_row(layer),
    )


def run_lengths(total: int, size: int) -> tuple[tuple[int, int], ...]:
    """``total`` cut into pieces of ``size``: (size, count) and the smaller remainder."""
    full, rest = divmod(total, size)
    return tuple((s, c) for s, c in ((size, full), (rest, 1 if rest else 0)) if c)


def shape(layer: Layer) -> tuple[int, int, int]:
    """(R, C, K): rows, columns and kernel taps of the layer's weight."""
    rows = layer.weight_shape[0]
    cols = layer.weight_shape[1] if len(layer.weight_shape) > 1 else 1
    return rows, cols, math.prod(layer.weight_shape[2:])


@functools.lru_cache(maxsize=4096)
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


def batch_outer(
    batch: int,
    r: int,
    layer: Layer,
    order: str = "batch_outer",
    out_rows: int = 0,
    size: int = 0,
    by: str = "row",
    hold: bool = False,
) -> Walk:
    """Groups of ``r`` samples outside; inside, the stationary tensor streams through once per
    spatial tile of ``out_rows`` output rows of a convolution (0: whole feature maps), in blocks
    of ``size`` rows (``by="row"``) or columns (``by="column"``) when the group's slices of the
    whole tensor do not fit (0: one block).

    Blocks either re-read the streamed side they do not cut (the inputs of row blocks, the
    incoming errors of column blocks) once per block, each block's spatial tiles in turn, or —
    ``hold`` — keep it in the innermost level: the blocks cycle inside each spatial tile and
    only the first reads it (the others are ``resident``).
    """
    rows, cols, _ = shape(layer)
    blocks: list[tuple[int, int, bool, int]] = []  # (rows, cols, ends its rows, count)
    if not size or size >= (rows if by == "row" else cols):
        blocks.append((rows, cols, True, 1))
    elif by == "row":
        blocks += [(n, cols, True, c) for n, c in run_lengths(rows, size)]
    else:
        blocks += [(rows, n, last, c) for n, c, last in _last_flagged(run_lengths(cols, size))]
    spatial = (
        spatial_tiles(layer, out_rows, rows, cols) if out_rows else ((Tile(rows, cols, True), 1),)
    )
    # The tiles are the run-length encoding of the loop's sequence of blocks: built a pattern
    # at a time (one spatial tile's blocks, or one block's spatial tiles) and repeated, which
    # gives the same encoding as adding the blocks one by one, in far fewer steps.
    tiles: list[tuple[Tile, int]] = []
    if hold and sum(c for *_, c in blocks) > 1:
        for where, n in spatial:  # each spatial tile: every block, the first reading the side
            pattern: list[tuple[Tile, int]] = []
            for k, (block_rows, block_cols, bias, count) in enumerate(blocks):
                tile = replace(where, rows=block_rows, cols=block_cols, bias=bias)
                resident = replace(tile, resident=True)
                if k == 0:
                    _add(pattern, tile, 1)
                    _add(pattern, resident, count - 1)
                else:
                    _add(pattern, resident, count)
            _repeat(tiles, pattern, n)
    else:
        for block_rows, block_cols, bias, count in blocks:
            pattern = []
            for where, n in spatial:
                _add(pattern, replace(where, rows=block_rows, cols=block_cols, bias=bias), n)
            _repeat(tiles, pattern, count)
    return Walk(order, run_lengths(batch, max(1, min(r, batch))), tuple(tiles))


def _add(tiles: list[tuple[Tile, int]], tile: Tile, n: int) -> None:
    """``n`` more of ``tile`` at the end of the run lengths ``tiles``."""
    if not n:
        return
    if tiles and tiles[-1][0] == tile:
        tiles[-1] = (tile, tiles[-1][1] + n)
    else:
        tiles.append((tile, n))


def _repeat(tiles: list[tuple[Tile, int]], pattern: list[tuple[Tile, int]], times: int) -> None:
    """``pattern`` (run lengths, neighbours distinct) ``times`` times at the end of ``tiles``,
    merged where equal tiles meet, as adding them one by one would."""
    if not pattern or not times:
        return
    if len(pattern) == 1:
        _add(tiles, pattern[0][0], pattern[0][1] * times)
        return
    for k in range(times):
        _add(tiles, *pattern[0])
        tiles.extend(pattern[1:])
        if pattern[-1][0] != pattern[0][0]:  # no seam merges: the rest are plain copies
            tiles.extend(pattern * (times - 1 - k))
            return


def weight_outer(batch: int, layer: Layer, size: int, by: str) -> Walk:
    """Tiles of the stationary tensor outside, the whole batch inside.

    ``by="row"``: tiles of ``size`` whole rows (each re-reads the column side once);
    ``by="column"``: tiles of ``size`` whole columns (each re-reads the row side once);
    ``by="both"``: every row cut into pieces of ``size`` columns, one row at a time (each piece
    re-reads both sides; the piece that ends a row holds its bias). Forward and backward never
    cut rows (their outputs would stay partial sums), so only the gradient takes ``both``.
    """
    rows, cols, _ = shape(layer)
    groups = ((batch, 1),)
    if by == "row":
        tiles = tuple((Tile(n, cols, True), c) for n, c in run_lengths(rows, size))
        return Walk("weight_outer", groups, tiles, tiled_by="column")
    if by == "both":
        per_row_tiles = _last_flagged(run_lengths(cols, size))
        tiles = tuple((Tile(1, n, last), c * rows) for n, c, last in per_row_tiles)
        return Walk("weight_outer", groups, tiles, tiled_by="both")
    tiles = tuple((Tile(rows, n, last), c) for n, c, last in _last_flagged(run_lengths(cols, size)))
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
