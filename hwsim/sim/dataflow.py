"""On-chip dataflow per learning rule: where each tensor lives, and the operations of a step.

A :class:`Plan` fixes the placement of every (tensor, layer) and the loop nest (:class:`Walk`)
of every layer and batch phase; the mapper (:mod:`hwsim.sim.mapper`) chooses both together.

:func:`fetch_moves` is the one definition of what a single fetch moves; the closed-form counts
(``hwsim.sim.counting``) multiply it by run lengths, :func:`lower_step` aggregates it into
:class:`Task` s (one unit, one phase, one layer, one pipeline piece) that the SimPy simulation
executes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hwsim.core.errors import InputError
from hwsim.core.formats import promote
from hwsim.core.rules import Rule
from hwsim.core.workload import Layer, Workload
from hwsim.sim.chip import CIM_FORMAT, Chip

if TYPE_CHECKING:
    from hwsim.sim.mapper import SearchStats
from hwsim.sim.loops import (
    Run,
    Tile,
    Walk,
    extent,
    geometry,
    shape,
)

PHASES = ("forward", "backward", "gradient", "update")
INIT_PHASE = "init"
DIRECTIONS = ("read", "write", "transport")
#: The most pipeline pieces a step is cut into (bounds SimPy events, keeps overlap visible).
MAX_PIPELINE_CHUNKS = 16
#: (phase, layer index)
WalkKey = tuple[str, int]


@dataclass(frozen=True)
class Plan:
    """Everything rule- and chip-specific the counts need, for one batch size."""

    rule: Rule
    batch_size: int
    #: (tensor, layer index) → memory level name; absent tensors are not stored.
    placement: dict[tuple[str, int], str]
    #: ``transport`` / ``mirror`` (BP), ``feedback`` (stored B, DFA's D, or brSF/frSF's stored
    #: magnitudes), ``prng`` (regenerated B, D or magnitudes) or ``none`` (uSF: no magnitudes).
    error_weight_source: str
    #: (phase, layer) → its loop order, for forward, backward (layers ≥ 1) and gradient
    walks: dict[WalkKey, Walk] = field(default_factory=dict)
    #: ``accumulate`` (one update per step) or ``fused`` (every sample updates at once)
    update: str = "accumulate"
    #: (tensor, layer) → bits moved per step ÷ bits stored (reported beside the placement)
    accesses_per_bit: dict[tuple[str, int], float] = field(default_factory=dict)
    #: sign-concordant rules: how the sign of W reaches the error unit, ``transport`` (W read
    #: at its level, 1 bit per weight over the interconnect) or ``mirror`` (a 1-bit sign
    #: mirror); ``""`` for every other rule
    sign_source: str = ""
    #: what one fetch moves, by (phase, layer, samples, tile, first): the placement, the
    #: workload and the chip of this plan fix it; fresh in every ``replace``d copy
    fetch_cache: dict[tuple[Any, ...], tuple[list[Move], int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: layer index → fraction of its stored weight levels an update changes, measured by the
    #: training run (``workload.json``'s ``update_sparsity``); a layer absent here is written
    #: whole by every update (not measured: the upper bound)
    update_fraction: dict[int, float] = field(default_factory=dict)
    #: what the mapper searched to find this plan (None for a plan built by hand)
    search: SearchStats | None = None

    @property
    def pieces(self) -> int:
        """Pipeline pieces of a step: at most MAX_PIPELINE_CHUNKS, at most one per sample."""
        return min(MAX_PIPELINE_CHUNKS, self.batch_size)

    @property
    def loss_walk(self) -> Walk:
        """The loss writes the top error for the groups of samples the top forward walk forms."""
        top = max(i for _, i in self.walks)
        groups = self.walks[("forward", top)].groups
        return Walk("batch_outer", groups, ((Tile(1, 1, False), 1),))

    @property
    def update_times(self) -> int:
        """How often each layer's weights are updated in a step (1, or every sample if fused)."""
        return self.batch_size if self.update == "fused" else 1


def stored_bits(
    workload: Workload, chip: Chip, rule: Rule, batch_size: int
) -> list[dict[str, Any]]:
    """Bits each stored tensor of each layer needs, in allocation order (most pinned first).

    Layer 0 sends no error down (the input needs none), so it has neither a BP mirror nor a
    feedback matrix B: nothing to store, synchronize or initialize for it. A fused update keeps
    no ΔW. The mirror is BP's copy of W (``wb`` per weight) or a sign-concordant rule's sign
    mirror (1 bit per weight); the feedback tensor is B (FA, IFA, KP), DFA's D_l
    (``n_out × in_l``) or brSF/frSF's magnitudes (:func:`feedback_element_bits`).
    """
    stores_b = rule.stores_feedback and chip.feedback_storage != "prng"
    mirror = chip.bp_weight_access == "mirror" and (
        not rule.uses_feedback_weights or rule.reads_weight_sign
    )
    mirror_bits = 1 if rule.reads_weight_sign else None
    rows: list[dict[str, Any]] = []
    layers = workload.layers
    for tensor in (
        "weights",
        "weight_mirror",
        "feedback_weights",
        "optimizer_state",
        "gradients",
        "activations",
        "errors",
    ):
        for i, layer in enumerate(layers):
            params = layer.weight_elements + layer.bias_elements
            sends_error = i > 0
            bits = {
                "weights": params * layer.weight_bits,
                "weight_mirror": (
                    layer.weight_elements * (mirror_bits or layer.weight_bits)
                    if mirror and sends_error
                    else 0
                ),
                "feedback_weights": (
                    feedback_elements(workload, rule, i) * feedback_element_bits(layer, rule)
                    if stores_b and sends_error
                    else 0
                ),
                "optimizer_state": params
                * workload.optimizer_state_per_weight
                * chip.optimizer_state_bits,
                "gradients": params * chip.gradient_bits if chip.update == "accumulate" else 0,
                "activations": batch_size * layer.input_elements * layer.activation_bits
                + (batch_size * layer.output_elements * layer.activation_bits)
                * (i == len(layers) - 1),  # the last layer also keeps the logits
                "errors": batch_size * layer.output_elements * layer.error_bits,
            }[tensor]
            if bits:
                rows.append({"tensor": tensor, "layer": i, "bits": bits})
    return rows


# ---------------------------------------------------------------------------------------------
# what each rule keeps and reads for the error phase


def check_feedback_storage(chip: Chip, rule: Rule) -> None:
    """Refuse a feedback storage that cannot hold what the rule keeps.

    Kolen–Pollack's B changes every step: neither a ROM nor a PRNG seed can hold it. brSF
    redraws its magnitudes every batch: a ROM cannot (a PRNG can, with a new seed per batch).
    """
    storage = chip.feedback_storage
    if rule.updates_feedback and storage in ("rom", "prng"):
        what = "a ROM cannot be written" if storage == "rom" else "a PRNG only regenerates"
        raise InputError(
            f"{chip.where('training.feedback_storage')}: rule {rule.spec!r} writes W's every "
            f"update into its feedback weights B, but feedback_storage is {storage} ({what} a "
            "fixed B); use sram or dram"
        )
    if rule.redraws_feedback and storage == "rom":
        raise InputError(
            f"{chip.where('training.feedback_storage')}: rule {rule.spec!r} redraws its random "
            "feedback magnitudes every batch, but feedback_storage is rom (a ROM cannot be "
            "written); use sram, dram or prng"
        )


def check_cim_rule(chip: Chip, rule: Rule) -> None:
    """Refuse the rules whose error pass this model does not map onto arrays.

    The sign-concordant rules read W's signs (a sign readout of arrays is not modelled) and
    Kolen–Pollack programs B with every update (its changed fraction is not measured).
    """
    if not chip.has_cim or rule.kind in ("bp", "fa", "ifa", "dfa"):
        return
    cim = next(m.name for m in chip.memories if m.cim is not None)
    raise InputError(
        f"{chip.where(f'memories.{cim}.kind')}: rule {rule.spec!r} is not modelled on a chip "
        "with compute-in-memory arrays (bp, fa, ifa and dfa are)"
    )


def update_fractions(workload: Workload) -> dict[int, float]:
    """Layer index → the fraction of its weight levels one update changes, as the training run
    measured it (step-weighted over the run); empty when the workload has no measurement."""
    measured = workload.update_sparsity
    if measured is None:
        return {}
    out = {}
    for i, layer in enumerate(workload.layers):
        stats = measured.layers.get(layer.name)
        if stats is not None:
            out[i] = stats.run_changed_fraction
    return out


def feedback_elements(workload: Workload, rule: Rule, i: int) -> int:
    """Elements of layer i's feedback tensor: DFA's D_l is n_out × in_l (n_out: the top layer's
    outputs), every other rule's B (or magnitudes) has W's shape."""
    if rule.direct:
        return workload.layers[-1].output_elements * workload.layers[i].input_elements
    return workload.layers[i].weight_elements


def feedback_element_bits(layer: Layer, rule: Rule) -> int:
    """Stored bits of one feedback element: ``fb`` for B or D; brSF/frSF store only the
    magnitude, ``max(fb − 1, 1)`` bits (the sign comes from W)."""
    if rule.reads_weight_sign:
        return max(layer.feedback_bits - 1, 1)
    return layer.feedback_bits


# ---------------------------------------------------------------------------------------------
# compute-in-memory arrays


def cim_matrix(
    workload: Workload, rule: Rule, tensor: str, i: int, *, bias: bool = True
) -> tuple[int, int, int]:
    """(rows, weights per row, bits per weight) of (tensor, layer i) as arrays hold it.

    W maps its inputs (plus a bias row) on rows, its outputs on columns; ``bias=False`` leaves
    the bias row out (the rows a transposed read senses: no error is sent to a constant 1).
    BP's mirror and the feedback weights are programmed pre-transposed (outputs on rows), so the
    error pass drives the rows with the error it receives; DFA's D_l has the top layer's
    outputs on rows.
    """
    layer = workload.layers[i]
    out = layer.weight_shape[0]
    per_output = layer.weight_elements // out
    if tensor == "weights":
        return per_output + (1 if layer.bias and bias else 0), out, layer.weight_bits
    if tensor == "weight_mirror":
        return out, per_output, layer.weight_bits
    bits = feedback_element_bits(layer, rule)
    if rule.direct:
        return workload.layers[-1].output_elements, layer.input_elements, bits
    return out, per_output, bits


def cim_tiles(
    chip: Chip,
    level: str,
    workload: Workload,
    rule: Rule,
    tensor: str,
    i: int,
    *,
    bias: bool = True,
) -> int:
    """Whole arrays (tensor, layer i) is tiled over on the cim level ``level``; with
    ``bias=False`` only those holding a row of W's weights (a bias row alone in the last row of
    arrays leaves them out: a transposed read does not activate them)."""
    arrays = chip.memory(level).cim
    assert arrays is not None
    rows, per_row, bits = cim_matrix(workload, rule, tensor, i, bias=bias)
    return arrays.tiles(rows, per_row * arrays.cells_per_weight(bits))


def cim_level(chip: Chip, plan: Plan, tensor: str, i: int) -> str | None:
    """The cim level holding (tensor, layer i), or None when it lives in a digital level."""
    level = plan.placement.get((tensor, i))
    return level if level is not None and chip.memory(level).cim is not None else None


def array_operand(plan: Plan, phase: str) -> tuple[str, bool] | None:
    """(stationary tensor, transposed) of the product ``phase`` would run in an array, or None
    for a product that is digital whatever the placement (gradient, update, regenerated B)."""
    if phase == "forward":
        return "weights", False
    if phase != "backward":
        return None
    source = plan.error_weight_source
    if source == "transpose":
        return "weights", True
    if source == "mirror":
        return "weight_mirror", False
    if source == "feedback":
        return "feedback_weights", False
    return None


def in_array(chip: Chip, plan: Plan, phase: str, i: int) -> str | None:
    """The cim level that computes ``phase``'s product of layer i in place, or None."""
    operand = array_operand(plan, phase)
    return cim_level(chip, plan, operand[0], i) if operand else None


def _mvm_moves(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, samples: int
) -> list[Move]:
    """The in-array product of a group of ``samples`` on layer i: every array holding the
    stationary tensor activates once per input slice per output position of each sample; the
    arrays work in parallel, the vectors one after another.

    A transposed read (BP's error pass on W's own arrays) senses W's input rows only: arrays
    that hold nothing but the bias row stay idle. Its columns carry a weight's ``k`` cells of
    different significance; driven together they would add up in one row current with equal
    weight, so each pass of an array drives the columns of one significance at a time: ``k``
    sub-activations, each converting every row. The array and its column drivers work once per
    pass, as in one activation (each cell conducts, each column is driven once), so the pass
    is one ``mvm_transposed`` access plus ``(k − 1) · rows`` conversions more (``convert``),
    and takes ``k`` activation times. Each row's ``k`` results are then shifted by their
    significance and added in digital, ``k − 1`` shift-adds per row per pass, one per extra
    conversion (docs/simulator.md, "Compute-in-memory arrays").
    """
    operand = array_operand(plan, phase)
    assert operand is not None  # called only where in_array found the arrays
    tensor, transposed = operand
    level = cim_level(chip, plan, tensor, i)
    assert level is not None
    arrays = chip.memory(level).cim
    assert arrays is not None
    layer = workload.layers[i]
    # output positions per sample (a convolution's pixels; 1 for a linear layer and for DFA's
    # dense D_l), each one vector through the arrays
    direct = plan.rule.direct and phase == "backward"
    positions = 1 if direct else layer.output_elements // layer.weight_shape[0]
    if phase == "forward":
        operand_bits = layer.activation_bits
    else:
        operand_bits = workload.layers[error_source_layer(workload, plan.rule, i)].error_bits
    tiles = cim_tiles(chip, level, workload, plan.rule, tensor, i, bias=not transposed)
    rows, per_row, bits = cim_matrix(workload, plan.rule, tensor, i, bias=not transposed)
    vectors = samples * positions * arrays.slices(operand_bits)
    # sub-activations per pass: one per cell significance when transposed, else one
    k = arrays.cells_per_weight(bits) if transposed else 1
    moves = [
        Move(
            level,
            tensor,
            (tensor, i),
            "mvm_transposed" if transposed else "mvm",
            rows * per_row * bits,
            accesses=vectors * tiles,
            cycles=vectors * k * arrays.mvm_latency_cycles,
        )
    ]
    if k > 1:  # the conversions of the k − 1 other significances (their time is above)
        extra = vectors * tiles * (k - 1) * arrays.rows
        moves.append(Move(level, tensor, (tensor, i), "convert", 0, accesses=extra, cycles=0))
    return moves


def _readout_move(
    workload: Workload,
    chip: Chip,
    plan: Plan,
    i: int,
    direction: str = "read",
    *,
    bias: bool = False,
    link: bool = False,
) -> Move:
    """Reading layer i's W out of its arrays row by row, through the converters: the rows of
    its weights, and its bias row with ``bias`` (only the update needs the bias; the error
    pass and a copy of W into B or a mirror do not)."""
    level = cim_level(chip, plan, "weights", i)
    assert level is not None
    arrays = chip.memory(level).cim
    assert arrays is not None
    rows, per_row, bits = cim_matrix(workload, plan.rule, "weights", i)
    if not bias and workload.layers[i].bias:
        rows -= 1
    rows_read = rows * -(-per_row * arrays.cells_per_weight(bits) // arrays.columns)
    stored = rows * per_row * bits
    return Move(
        level,
        "weights",
        ("weights", i),
        direction,
        stored,
        stored if link else 0,
        accesses=rows_read,
        cycles=rows_read * max(chip.memory(level).latency_cycles, 1),
    )


def _program_move(
    workload: Workload, chip: Chip, plan: Plan, tensor: str, i: int, weights: int, link: int = 0
) -> Move:
    """Programming ``weights`` weights of (tensor, layer i) into its arrays: all their cells."""
    level = cim_level(chip, plan, tensor, i)
    assert level is not None
    arrays = chip.memory(level).cim
    assert arrays is not None
    _, _, bits = cim_matrix(workload, plan.rule, tensor, i)
    cells = weights * arrays.cells_per_weight(bits)
    return Move(
        level,
        tensor,
        (tensor, i),
        "write",
        cells * arrays.bits_per_cell,
        link,
        accesses=cells,
        cycles=arrays.program_cycles(cells),
    )


def changed_weights(plan: Plan, i: int, weights: int) -> int:
    """Weights of layer i an update reprograms: the measured fraction of ``weights`` (rounded
    to whole weights), or all of them where nothing was measured."""
    fraction = plan.update_fraction.get(i)
    return weights if fraction is None else round(fraction * weights)


def backward_layer(workload: Workload, rule: Rule, i: int) -> Layer:
    """The layer whose shape the backward phase of layer i walks.

    DFA multiplies the top error (n_out per sample) by D_l: a dense layer of ``in_l`` inputs and
    ``n_out`` outputs, one tap, no bias, so loop orders tile D_l as they tile any W. Every other
    rule walks layer i itself.
    """
    layer = workload.layers[i]
    if not rule.direct:
        return layer
    n_out, n_in = workload.layers[-1].output_elements, layer.input_elements
    return replace(
        layer,
        kind="linear",
        weight_shape=(n_out, n_in),
        bias=False,
        input_shape=(n_in,),
        output_shape=(n_out,),
        macs_per_sample=n_out * n_in,
    )


def backward_element_bits(layer: Layer, plan: Plan) -> int:
    """Bits per element of the backward phase's stationary tensor as the error unit holds it
    (what a ``weight_outer`` tile must fit): W for BP, B or D for FA/IFA/KP/DFA, the sign plus
    the magnitude for brSF/frSF, the sign alone for uSF."""
    rule = plan.rule
    if rule.reads_weight_sign:
        return 1 + (feedback_element_bits(layer, rule) if rule.stores_feedback else 0)
    return layer.feedback_bits if rule.uses_feedback_weights else layer.weight_bits


def error_source_layer(workload: Workload, rule: Rule, i: int) -> int:
    """The layer whose output error layer i's backward phase reads: the top layer's (written
    by the loss) for DFA, layer i's own otherwise."""
    return len(workload.layers) - 1 if rule.direct else i


# ---------------------------------------------------------------------------------------------
# what one fetch moves


@dataclass(frozen=True)
class Move:
    """Bits of one tensor moved at one level by one fetch (``level`` None: generated)."""

    level: str | None
    tensor: str
    #: the (tensor, layer) whose storage this is (None: data passing through, not stored)
    owner: tuple[str, int] | None
    direction: str
    bits: int
    link_bits: int = 0
    generated_values: int = 0
    #: a compute-in-memory level's count of this move (array activations, conversions, rows
    #: read out or cells programmed) and the cycles it keeps the level busy, or a digital
    #: level's scattered write (a mirror sent only its changed values: one access per value);
    #: None on every other digital move, whose accesses and time follow from ``bits``
    #: (:func:`move_accesses`)
    accesses: int | None = None
    cycles: int | None = None


def move_accesses(chip: Chip, move: Move) -> tuple[int, int]:
    """(words, accesses) of one move: a digital level's ⌈bits / word⌉ words in bursts, or a
    move's own count (one word per activation, conversion, row or cell; one per value of a
    scattered write)."""
    if move.accesses is not None:
        return move.accesses, move.accesses
    if move.level is None:
        return 0, 0
    return chip.memory(move.level).words_and_accesses(move.bits)


def next_activation_bits(workload: Workload, i: int) -> int:
    """Bits of layer i's output activations: the next layer's input width (or its own)."""
    layers = workload.layers
    return layers[i + 1].activation_bits if i + 1 < len(layers) else layers[i].activation_bits


def mac_format(workload: Workload, chip: Chip, plan: Plan, phase: str, i: int) -> str:
    """Number format of a MAC of ``phase`` on layer ``i``: its operands' formats promoted
    (:func:`hwsim.core.formats.promote`); it prices the MAC."""
    layer = workload.layers[i]
    if in_array(chip, plan, phase, i):
        return CIM_FORMAT
    if phase == "forward":
        return promote(layer.weight_format, layer.activation_format)
    if phase == "backward":
        rule = plan.rule
        errors = workload.layers[error_source_layer(workload, rule, i)].error_format
        if rule.reads_weight_sign and not rule.stores_feedback:
            return promote("int1", errors)  # uSF: ±1 (the layer's one rms scale apart)
        operand = layer.feedback_format if rule.uses_feedback_weights else layer.weight_format
        return promote(operand, errors)
    if phase == "gradient":
        return promote(layer.activation_format, layer.error_format)
    state = (chip.optimizer_state_format,) if workload.optimizer_state_per_weight else ()
    return promote(layer.weight_format, chip.gradient_format, *state)


def fetch_moves(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, run: Run
) -> tuple[list[Move], int]:
    """What one fetch of ``run`` in (phase, layer i) moves, and its MACs (computed once per plan).

    Forward: the W tile is read, the group's inputs for the tile's columns read, its outputs
    for the tile's rows written. Backward: the error-side weights of the tile (W carried over
    the interconnect, BP's mirror, B, or B regenerated), the incoming errors for its rows read,
    the errors sent down for its columns written. Gradient: inputs and errors read; ΔW of the
    tile written, and read back first unless this is the tile's first group (``accumulate``;
    a fused update stores no ΔW).
    """
    key = (phase, i, run.samples, run.tile, run.first)
    found = plan.fetch_cache.get(key)
    if found is None:
        found = plan.fetch_cache[key] = _fetch_moves(workload, chip, plan, phase, i, run)
    return found


def _fetch_moves(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, run: Run
) -> tuple[list[Move], int]:
    layer, place = workload.layers[i], plan.placement
    n, tile = run.samples, run.tile
    weights, row_side, col_side, macs = extent(layer, tile)
    bias = tile.rows if tile.bias and layer.bias else 0
    top = len(workload.layers) - 1
    moves: list[Move] = []

    def stored(tensor: str, owner: int, direction: str, bits: int, link: int = 0) -> None:
        key = (tensor, owner)
        moves.append(Move(place[key], tensor, key, direction, bits, link))

    # a block after its group's first keeps the side its blocks do not cut (row blocks: the
    # column side; column blocks: the row side) from the first: that side is not read again
    walked = backward_layer(workload, plan.rule, i) if phase == "backward" else layer
    rows_cut = tile.rows < shape(walked)[0]
    keep_cols, keep_rows = tile.resident and rows_cut, tile.resident and not rows_cut

    if phase == "forward":
        if in_array(chip, plan, phase, i):
            moves += _mvm_moves(workload, chip, plan, phase, i, n)
        else:
            stored("weights", i, "read", (weights + bias) * layer.weight_bits)
        if not keep_cols:
            stored("activations", i, "read", n * col_side * layer.activation_bits)
        out = n * row_side * next_activation_bits(workload, i)
        stored("activations", min(i + 1, top), "write", out)
    elif phase == "backward":
        rule = plan.rule
        if rule.direct:  # D_l's tile: the top error's rows, the error sent down's columns
            weights, row_side, col_side, macs = extent(backward_layer(workload, rule, i), tile)
        source_layer = error_source_layer(workload, rule, i)
        e_bits = workload.layers[source_layer].error_bits
        if not keep_rows:
            stored("errors", source_layer, "read", n * row_side * e_bits)
        source = plan.error_weight_source
        if in_array(chip, plan, phase, i):
            moves += _mvm_moves(workload, chip, plan, phase, i, n)
            source = "none"
        elif source == "transport" and cim_level(chip, plan, "weights", i):
            moves.append(_readout_move(workload, chip, plan, i, "transport", link=True))
            source = "none"
        elif source == "transpose":  # W spilled out of its arrays: carried like transport
            source = "transport"
        if plan.sign_source == "transport":  # W read whole at its level, its sign carried
            stored("weights", i, "transport", weights * layer.weight_bits, link=weights)
        elif plan.sign_source == "mirror":
            stored("weight_mirror", i, "read", weights)
        if source == "transport":
            wbits = weights * layer.weight_bits
            stored("weights", i, "transport", wbits, link=wbits)
        elif source == "mirror":
            stored("weight_mirror", i, "read", weights * layer.weight_bits)
        elif source == "feedback":
            stored("feedback_weights", i, "read", weights * feedback_element_bits(layer, rule))
        elif source == "prng":
            moves.append(Move(None, "feedback_weights", None, "generate", 0, 0, weights))
        e_down = workload.layers[i - 1].error_bits
        geo = geometry(layer) if tile.halo else None
        if geo is not None and geo.overlap_rows:  # partial sums shared with the tile before
            overlap = tile.cols * geo.overlap_rows * geo.cols_touched
            stored("errors", i - 1, "read", n * overlap * e_down)
        stored("errors", i - 1, "write", n * col_side * e_down)
    else:
        if not keep_cols:
            stored("activations", i, "read", n * col_side * layer.activation_bits)
        if not keep_rows:
            stored("errors", i, "read", n * row_side * layer.error_bits)
        if plan.update == "accumulate":
            gbits = (weights + bias) * chip.gradient_bits
            if not run.first:
                stored("gradients", i, "read", gbits)
            stored("gradients", i, "write", gbits)
    return moves, n * macs


def loss_moves(workload: Workload, plan: Plan, run: Run) -> list[Move]:
    """The loss writes the top layer's output errors of a group of samples."""
    top = len(workload.layers) - 1
    layer = workload.layers[top]
    key = ("errors", top)
    bits = run.samples * layer.output_elements * layer.error_bits
    return [Move(plan.placement[key], "errors", key, "write", bits)]


def update_moves(workload: Workload, chip: Chip, plan: Plan, i: int) -> tuple[list[Move], int]:
    """One update of layer i: W += f(ΔW, state); BP's mirror (layers ≥ 1) re-synchronized.

    With ``accumulate`` ΔW is read from its store; ``fused`` computes it on the spot (the
    gradient phase's MACs) and stores none. A mirror synchronized through a level
    (``training.mirror_sync_via``) is written there and read back before the mirror is written;
    each leg crosses the interconnect.
    """
    layer, place = workload.layers[i], plan.placement
    params = layer.weight_elements + layer.bias_elements
    state = workload.optimizer_state_per_weight
    moves: list[Move] = []
    if plan.update == "accumulate":
        key = ("gradients", i)
        moves.append(Move(place[key], "gradients", key, "read", params * chip.gradient_bits))
    w = ("weights", i)
    if cim_level(chip, plan, "weights", i):
        # the old levels read out, then only the weights whose level changed reprogrammed
        moves.append(_readout_move(workload, chip, plan, i, bias=True))
        moves.append(
            _program_move(workload, chip, plan, "weights", i, changed_weights(plan, i, params))
        )
    else:
        for direction in ("read", "write"):
            moves.append(Move(place[w], "weights", w, direction, params * layer.weight_bits))
    if state:
        s = ("optimizer_state", i)
        sbits = params * state * chip.optimizer_state_bits
        moves += [Move(place[s], "optimizer_state", s, d, sbits) for d in ("read", "write")]
    mirrored = plan.error_weight_source == "mirror" or plan.sign_source == "mirror"
    if mirrored and i > 0:  # layer 0 has no mirror
        moves += mirror_copy_moves(workload, chip, plan, i, sync=True)
    return moves, params * (1 + state)


def feedback_update_moves(
    workload: Workload, chip: Chip, plan: Plan, i: int
) -> tuple[list[Move], int, str]:
    """Kolen–Pollack: one update of layer i ≥ 1 also lands in B (moves, MACs, MAC format).

    The update unit sends the step (``We`` elements at ``gradient_bits``) over the interconnect
    to B's memory, where B is read and written (``We · fb``) with ``We`` MACs in
    ``promote(feedback_format, gradient_format)``. The decay λ folds into the same
    read-modify-write. Nothing for other rules or layer 0.
    """
    if not plan.rule.updates_feedback or i == 0:
        return [], 0, ""
    layer = workload.layers[i]
    key = ("feedback_weights", i)
    n = layer.weight_elements
    bits = n * layer.feedback_bits
    moves = [
        Move(plan.placement[key], "feedback_weights", key, "read", bits),
        Move(plan.placement[key], "feedback_weights", key, "write", bits, n * chip.gradient_bits),
    ]
    return moves, n, promote(layer.feedback_format, chip.gradient_format)


def redraw_moves(workload: Workload, plan: Plan, i: int) -> list[Move]:
    """brSF with stored magnitudes: once per step (per batch) layer i ≥ 1 draws ``We`` new
    magnitudes (PRNG generation) and writes them. Regenerated magnitudes (``prng``) only take a
    new seed: nothing to count."""
    if not plan.rule.redraws_feedback or i == 0 or plan.error_weight_source != "feedback":
        return []
    layer = workload.layers[i]
    key = ("feedback_weights", i)
    n = layer.weight_elements
    bits = n * feedback_element_bits(layer, plan.rule)
    return [
        Move(None, "feedback_weights", None, "generate", 0, 0, n),
        Move(plan.placement[key], "feedback_weights", key, "write", bits),
    ]


@dataclass(frozen=True)
class UpdatePart:
    """One part of layer i's update work: its moves, MACs and their number format.
    ``per_update``: repeated with every update (every sample when fused), else once per step."""

    moves: list[Move]
    macs: int
    mac_format: str
    per_update: bool = True


def update_parts(workload: Workload, chip: Chip, plan: Plan, i: int) -> list[UpdatePart]:
    """Layer i's update work, in order: W's update (:func:`update_moves`), Kolen–Pollack's B
    receiving it (:func:`feedback_update_moves`), brSF's redraw (:func:`redraw_moves`, once per
    step). The closed form and the lowering both count from this."""
    moves, macs = update_moves(workload, chip, plan, i)
    parts = [UpdatePart(moves, macs, mac_format(workload, chip, plan, "update", i))]
    fb_moves, fb_macs, fb_fmt = feedback_update_moves(workload, chip, plan, i)
    if fb_moves:
        parts.append(UpdatePart(fb_moves, fb_macs, fb_fmt))
    redraw = redraw_moves(workload, plan, i)
    if redraw:
        parts.append(UpdatePart(redraw, 0, "", per_update=False))
    return parts


def sync_payload_bits(weights: int, per_weight: int, changed: int) -> int:
    """Bits that bring a mirror of ``weights`` values of ``per_weight`` bits up to date when
    ``changed`` of them changed: all of them, or the changed values each with its index
    (``⌈log₂ weights⌉`` bits), whichever is fewer. The one rule of every synchronization that
    sends only what changed: a mirror in arrays, and a digital one with ``training.mirror_sync:
    changed``. With every weight changed (nothing measured) it is all of them."""
    index_bits = max(1, (weights - 1).bit_length())
    return min(weights * per_weight, changed * (per_weight + index_bits))


def _scattered_write(chip: Chip, level: str, values: int, per_weight: int) -> tuple[int, int]:
    """(accesses, cycles) of writing ``values`` values of ``per_weight`` bits, each at its own
    place in a digital level: one masked write of each access unit (a word, a DRAM burst) the
    value lies in — no read first, the level's write mask (SRAM bit or byte enables, DRAM data
    masks) leaves the word's other values as they are. Values packed at a multiple of
    ``g = gcd(per_weight, unit)`` bits touch at most ``⌈(per_weight − g) / unit⌉ + 1`` units:
    one where a unit holds a whole number of values. Two changed values in one word are two
    writes (the sync unit writes each (index, value) pair as it arrives)."""
    memory = chip.memory(level)
    unit = memory.word_bits * memory.burst_words
    per_value = -(-(per_weight - math.gcd(per_weight, unit)) // unit) + 1
    accesses = values * per_value
    return accesses, accesses * -(-unit // memory.bandwidth_bits_per_cycle)


def _through_via(chip: Chip, tensor: str, bits: int) -> list[Move]:
    """Data crossing from one side of the chip to the other through ``training.mirror_sync_via``
    (cores that share only that level): written there over the interconnect and read back;
    nothing when the sides share the interconnect."""
    via = chip.mirror_sync_via
    if via is None:
        return []
    return [Move(via, tensor, None, "write", bits, bits), Move(via, tensor, None, "read", bits)]


def mirror_copy_moves(
    workload: Workload, chip: Chip, plan: Plan, i: int, *, sync: bool = False
) -> list[Move]:
    """Writing layer i's W into BP's mirror (or its sign into a sign-concordant rule's 1-bit
    mirror): directly, or through ``mirror_sync_via``.

    The first copy (``sync`` false) carries and writes all of W. A synchronization after an
    update sends only what changed where it can (:func:`sync_payload_bits`: all of W, or the
    changed values with their indices, whichever is fewer bits), and that payload is what
    crosses the interconnect and passes through ``mirror_sync_via``. A mirror in arrays always
    does (cell by cell, it programs only the weights whose level changed); a digital mirror
    does with ``training.mirror_sync: changed``, and then writes each changed value in place
    (:func:`_scattered_write`), else rewrites itself whole. A sign mirror counts the measured
    level changes: every sign flip is one, so it is an upper bound on the flips.
    """
    layer = workload.layers[i]
    key = ("weight_mirror", i)
    n = layer.weight_elements
    per_weight = 1 if plan.sign_source == "mirror" else layer.weight_bits
    wbits = n * per_weight
    changed = changed_weights(plan, i, n) if sync else n
    payload = sync_payload_bits(n, per_weight, changed)
    level = plan.placement[key]
    if cim_level(chip, plan, "weight_mirror", i):
        write = _program_move(workload, chip, plan, "weight_mirror", i, changed, payload)
    elif chip.mirror_sync == "changed" and payload < wbits:
        accesses, cycles = _scattered_write(chip, level, changed, per_weight)
        write = Move(
            level,
            "weight_mirror",
            key,
            "write",
            changed * per_weight,
            payload,
            accesses=accesses,
            cycles=cycles,
        )
    else:
        payload = wbits
        write = Move(level, "weight_mirror", key, "write", wbits, payload)
    return [*_through_via(chip, "weight_mirror", payload), write]


def init_moves(workload: Workload, chip: Chip, plan: Plan, i: int) -> list[Move]:
    """The one-time set-up a rule needs on layer i beyond the common random init of W.

    Layer 0 needs none: it sends no error down, so it has no mirror and no B. BP (mirror mode)
    copies W into its mirror; FA and KP write B, DFA writes D_l; IFA writes B = W₀ (read W,
    carry it), or — with B in ROM or regenerated — derives W₀ from B instead. The
    sign-concordant rules in mirror mode make the first sign-mirror copy (read W, write 1 bit
    per weight); frSF writes its fixed magnitudes, brSF draws (PRNG) and writes its first ones
    (stored in sram/dram). Nothing with B in ROM or regenerated, except IFA's.

    IFA's W₀ crosses from the forward side to the error side (or, derived from B, back) as
    BP's copy of W does: through ``training.mirror_sync_via`` when the chip names one (cores
    that share only that level), else over the interconnect alone.
    """
    if i == 0:
        return []
    layer, place = workload.layers[i], plan.placement
    n = layer.weight_elements
    wbits, fbits = n * layer.weight_bits, n * layer.feedback_bits
    kind, source, storage = plan.rule.kind, plan.error_weight_source, chip.feedback_storage
    w, b = ("weights", i), ("feedback_weights", i)
    stored = storage in ("sram", "dram", "cim")
    read_w = (
        _readout_move(workload, chip, plan, i)
        if cim_level(chip, plan, "weights", i)
        else Move(place[w], "weights", w, "read", wbits)
    )
    if kind == "ifa":
        if stored:
            staged = _through_via(chip, "feedback_weights", fbits)
            if cim_level(chip, plan, "feedback_weights", i):
                return [
                    read_w,
                    *staged,
                    _program_move(workload, chip, plan, "feedback_weights", i, n, fbits),
                ]
            return [read_w, *staged, Move(place[b], "feedback_weights", b, "write", fbits, fbits)]
        load = (
            Move(place[b], "feedback_weights", b, "read", fbits)
            if storage == "rom"
            else Move(None, "feedback_weights", None, "generate", 0, 0, n)
        )
        staged = _through_via(chip, "weights", fbits)
        if cim_level(chip, plan, "weights", i):
            return [load, *staged, _program_move(workload, chip, plan, "weights", i, n, fbits)]
        return [load, *staged, Move(place[w], "weights", w, "write", wbits, fbits)]
    moves: list[Move] = []
    if source == "mirror" or plan.sign_source == "mirror":  # BP's copy of W, or W's signs
        moves += [read_w, *mirror_copy_moves(workload, chip, plan, i)]
    if plan.rule.stores_feedback and stored:  # B, D_l or the magnitudes, written once
        if plan.rule.redraws_feedback:  # brSF: the first draw of what it redraws every batch
            moves.append(Move(None, "feedback_weights", None, "generate", 0, 0, n))
        elements = feedback_elements(workload, plan.rule, i)
        if cim_level(chip, plan, "feedback_weights", i):
            moves.append(_program_move(workload, chip, plan, "feedback_weights", i, elements))
        else:
            bits = elements * feedback_element_bits(layer, plan.rule)
            moves.append(Move(place[b], "feedback_weights", b, "write", bits))
    return moves


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


def aggregate(chip: Chip, moves: list[tuple[Move, int]]) -> list[Transfer]:
    """(move, times) pairs summed into one transfer per (level, tensor, direction, link).

    Words and accesses round up per fetch: a move of b bits is ⌈b / word⌉ words, in
    ⌈words / burst⌉ accesses, every time it happens.
    """
    merged: dict[tuple[Any, ...], list[int]] = {}
    for move, times in moves:
        key = (move.level, move.tensor, move.direction, bool(move.link_bits))
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
        Transfer(level, tensor, direction, *values)
        for (level, tensor, direction, _), values in merged.items()
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
) -> Task:
    loads: list[tuple[Move, int]] = []
    stores: list[tuple[Move, int]] = []
    for pair in moves:
        move = pair[0]
        # data passing through a level (a mirror synchronized via DRAM) moves after the compute
        late = move.direction == "write" or (move.owner is None and move.level is not None)
        (stores if late else loads).append(pair)
    return Task(
        unit, phase, i, c, tuple(aggregate(chip, loads)), macs, tuple(aggregate(chip, stores)), fmt
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
            macs = 0
            for run in runs:
                fetch, fetch_macs = fetch_moves(workload, chip, plan, phase, i, run)
                moves += [(m, run.count) for m in fetch]
                macs += fetch_macs * run.count
            if moves:
                fmt = mac_format(workload, chip, plan, phase, i)
                pieces[c].append(_task(chip, unit, phase, i, c, moves, macs, fmt))

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
