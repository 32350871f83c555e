"""On-chip dataflow per learning rule: where each tensor lives, and the operations of a step.

A :class:`Plan` fixes the placement of every (tensor, layer) and the loop nest (:class:`Walk`)
of every layer and batch phase; the mapper (:mod:`hwsim.sim.mapper`) chooses both together.

:func:`fetch_moves` is the one definition of what a single fetch moves; the closed-form counts
(``hwsim.sim.counting``) multiply it by run lengths, :func:`lower_step` aggregates it into
:class:`Task` s (one unit, one phase, one layer, one pipeline piece) that the SimPy simulation
executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hwsim.core.errors import InputError
from hwsim.core.formats import promote
from hwsim.core.rules import Rule
from hwsim.core.workload import Layer, Workload
from hwsim.sim import spatial
from hwsim.sim.chip import CIM_FORMAT, Chip
from hwsim.sim.moves import DRAIN, FEED, Move

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
DIRECTIONS = ("read", "write", "transport", FEED, DRAIN)
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
    #: the MAC array's (cycles, dataflow) of each fetch, chosen with its operand moves
    array_cache: dict[tuple[Any, ...], tuple[int, str]] = field(
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


def readout_move(
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


def program_move(
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
            moves.append(readout_move(workload, chip, plan, i, "transport", link=True))
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
    array = spatial.array_of(chip, phase)
    if array is not None and not in_array(chip, plan, phase, i):
        errors_of = error_source_layer(workload, plan.rule, i) if phase == "backward" else i
        operands, cycles, dataflow = spatial.operand_moves(
            chip, array, workload, phase, i, errors_of, run, walked, moves
        )
        plan.array_cache[_array_key(phase, i, run)] = (cycles, dataflow)
        moves += operands
    return moves, n * macs


def _array_key(phase: str, i: int, run: Run) -> tuple[Any, ...]:
    return ("array", phase, i, run.samples, run.tile, run.first)


def fetch_cycles(workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, run: Run) -> int:
    """Cycles the MAC array of ``phase``'s unit takes for one fetch of ``run``, in the dataflow
    its operand moves chose (:func:`fetch_dataflow`); 0 where the unit has no array or the
    arrays of a compute-in-memory level compute it (the caller then counts lanes, or nothing)."""
    found = fetch_dataflow(workload, chip, plan, phase, i, run)
    return found[0] if found is not None else 0


def fetch_dataflow(
    workload: Workload, chip: Chip, plan: Plan, phase: str, i: int, run: Run
) -> tuple[int, str] | None:
    """(cycles, dataflow) of one fetch on its unit's MAC array; None without one."""
    if spatial.array_of(chip, phase) is None or in_array(chip, plan, phase, i):
        return None
    fetch_moves(workload, chip, plan, phase, i, run)  # chooses the dataflow
    return plan.array_cache[_array_key(phase, i, run)]
