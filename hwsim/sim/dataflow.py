"""On-chip dataflow per learning rule: where each tensor lives, and the operations of a step.

A :class:`Plan` fixes the placement of every (tensor, layer) — each at its class's preferred
level, spilling outward when the level is full; where tensors compete for a level, the most
accessed per stored bit win (:func:`make_plan`) — and how many samples share one weight fetch.
:func:`lower_step` turns a plan into
:class:`Task` s (one unit, one phase, one layer, one chunk of sample groups), each a list of
memory transfers plus MACs; the SimPy simulation executes them. The closed-form counts in
``hwsim.sim.counting`` are derived independently from the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.formats import promote
from hwsim.core.rules import Rule
from hwsim.core.workload import Layer, Workload
from hwsim.sim.chip import Chip

PHASES = ("forward", "backward", "gradient", "update")
INIT_PHASE = "init"
DIRECTIONS = ("read", "write", "transport")
#: The most pipeline chunks a step is cut into (bounds SimPy events, keeps overlap visible).
MAX_PIPELINE_CHUNKS = 16


@dataclass(frozen=True)
class Plan:
    """Everything rule- and chip-specific the counts need, for one batch size."""

    rule: Rule
    batch_size: int
    samples_per_fetch: int
    #: (tensor, layer index) → memory level name; absent tensors are not stored.
    placement: dict[tuple[str, int], str]
    #: ``transport`` / ``mirror`` (BP), ``feedback`` (stored B) or ``prng`` (regenerated B).
    error_weight_source: str
    #: (tensor, layer) → bits moved per step ÷ bits stored: the order of allocation.
    accesses_per_bit: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def fetch_groups(self) -> int:
        """Weight fetches per layer and phase: ⌈batch / samples per fetch⌉."""
        return math.ceil(self.batch_size / self.samples_per_fetch)

    def group_sizes(self) -> list[int]:
        """Samples in each fetch group; only the last can be smaller."""
        g, r = self.fetch_groups, self.samples_per_fetch
        return [r] * (g - 1) + [self.batch_size - r * (g - 1)]


def stored_bits(
    workload: Workload, chip: Chip, rule: Rule, batch_size: int
) -> list[dict[str, Any]]:
    """Bits each stored tensor of each layer needs, in allocation order (most pinned first).

    Layer 0 sends no error down (the input needs none), so it has neither a BP mirror nor a
    feedback matrix B: nothing to store, synchronize or initialize for it.
    """
    uses_b = rule.uses_feedback_weights
    mirror = not uses_b and chip.bp_weight_access == "mirror"
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
                    layer.weight_elements * layer.weight_bits if mirror and sends_error else 0
                ),
                "feedback_weights": (
                    layer.weight_elements * layer.feedback_bits
                    if uses_b and chip.feedback_storage != "prng" and sends_error
                    else 0
                ),
                "optimizer_state": params
                * workload.optimizer_state_per_weight
                * chip.optimizer_state_bits,
                "gradients": params * chip.gradient_bits,
                "activations": batch_size * layer.input_elements * layer.activation_bits
                + (batch_size * layer.output_elements * layer.activation_bits)
                * (i == len(layers) - 1),  # the last layer also keeps the logits
                "errors": batch_size * layer.output_elements * layer.error_bits,
            }[tensor]
            if bits:
                rows.append({"tensor": tensor, "layer": i, "bits": bits})
    return rows


def _allocate(
    workload: Workload, chip: Chip, rows: list[dict[str, Any]]
) -> dict[tuple[str, int], str]:
    """Place ``rows`` in the order given: each at its class's level, else the next outward."""
    free = {m.name: m.size_bits for m in chip.memories}
    placement: dict[tuple[str, int], str] = {}
    for row in rows:
        tensor, layer, bits = row["tensor"], row["layer"], row["bits"]
        for level in chip.spill_order(tensor):
            if free[level.name] >= bits:
                free[level.name] -= bits
                placement[(tensor, layer)] = level.name
                break
        else:
            raise InputError(
                f"chip {chip.name!r}: {tensor} of layer {workload.layers[layer].name!r} "
                f"({bits} bits) fit in neither {chip.placement[tensor]!r} nor any level outward"
            )
    return placement


def make_plan(workload: Workload, chip: Chip, rule: Rule, batch_size: int) -> Plan:
    """Place every tensor and fix the weight reuse.

    Each (tensor, layer) goes to its class's level in the chip's ``placement`` if it still has
    room, else to the next level outward. The order of allocation decides who gets a contested
    level: first the chip's ``training.pinned`` classes (in that order), then everything else by
    traffic, the most bits moved per step per bit stored first (ties: the class order of
    :func:`stored_bits`). Traffic does not depend on where a tensor lives, so it is counted in
    closed form (:func:`hwsim.sim.counting.step_traffic_bits`) on a provisional placement in
    the class order alone.
    """
    rows = stored_bits(workload, chip, rule, batch_size)
    if rule.uses_feedback_weights:
        source = "prng" if chip.feedback_storage == "prng" else "feedback"
    else:
        source = chip.bp_weight_access
    provisional = Plan(
        rule=rule,
        batch_size=batch_size,
        samples_per_fetch=samples_per_fetch(workload, chip, batch_size),
        placement=_allocate(workload, chip, rows),
        error_weight_source=source,
    )
    from hwsim.sim.counting import step_traffic_bits  # counting builds on this module

    moved = step_traffic_bits(workload, chip, provisional)
    intensity = {
        (r["tensor"], r["layer"]): moved.get((r["tensor"], r["layer"]), 0) / r["bits"] for r in rows
    }
    pinned = [r for t in chip.pinned for r in rows if r["tensor"] == t]
    others = [r for r in rows if r["tensor"] not in chip.pinned]
    others.sort(key=lambda r: -intensity[(r["tensor"], r["layer"])])  # stable: ties keep order
    try:
        placement = _allocate(workload, chip, pinned + others)
    except InputError:
        # A tight chip may fit in the class order but not in the traffic order (packing): it
        # is still a chip that trains, so keep the placement that fits.
        placement = provisional.placement
    return replace(provisional, placement=placement, accesses_per_bit=intensity)


def samples_per_fetch(workload: Workload, chip: Chip, batch_size: int) -> int:
    """Samples sharing one fetch of a weight tile.

    ``training.samples_per_weight_fetch: auto`` lets buffer capacity decide: the most samples
    whose input and output activations, for every layer, fit in the innermost memory level.
    """
    if chip.samples_per_weight_fetch is not None:
        return min(chip.samples_per_weight_fetch, batch_size)
    capacity = chip.memories[0].size_bits
    per_sample = max(
        (layer.input_elements + layer.output_elements) * layer.activation_bits
        for layer in workload.layers
    )
    return max(1, min(batch_size, capacity // per_sample))


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


@dataclass(frozen=True)
class Task:
    """One unit's work on one layer in one phase for one chunk: load, compute, store."""

    unit: str
    phase: str
    layer: int
    chunk: int
    loads: tuple[Transfer, ...]
    macs: int
    stores: tuple[Transfer, ...]
    #: number format the MACs run in, promoted from their operands' (prices the MACs)
    operand_format: str = ""


def next_activation_bits(workload: Workload, i: int) -> int:
    """Bits of layer i's output activations: the next layer's input width (or its own)."""
    layers = workload.layers
    return layers[i + 1].activation_bits if i + 1 < len(layers) else layers[i].activation_bits


def mac_format(workload: Workload, chip: Chip, plan: Plan, phase: str, i: int) -> str:
    """Number format of a MAC of ``phase`` on layer ``i``: its operands' formats promoted
    (:func:`hwsim.core.formats.promote`); it prices the MAC."""
    layer = workload.layers[i]
    if phase == "forward":
        return promote(layer.weight_format, layer.activation_format)
    if phase == "backward":
        uses_b = plan.error_weight_source in ("feedback", "prng")
        return promote(layer.feedback_format if uses_b else layer.weight_format, layer.error_format)
    if phase == "gradient":
        return promote(layer.activation_format, layer.error_format)
    state = (chip.optimizer_state_format,) if workload.optimizer_state_per_weight else ()
    return promote(layer.weight_format, chip.gradient_format, *state)


class _Lowerer:
    def __init__(self, workload: Workload, chip: Chip, plan: Plan):
        self.w, self.chip, self.plan = workload, chip, plan

    def transfer(
        self,
        tensor: str,
        layer: int,
        direction: str,
        bits_per_fetch: list[int],
        link: bool = False,
        link_bits: int | None = None,
    ) -> Transfer:
        """A transfer of several fetches; words and accesses round up per fetch.

        ``link`` sends the data over the interconnect too (``link_bits`` when the moved width
        differs from the stored one).
        """
        level = self.chip.memory(self.plan.placement[(tensor, layer)])
        words = [math.ceil(b / level.word_bits) for b in bits_per_fetch]
        return Transfer(
            level=level.name,
            tensor=tensor,
            direction=direction,
            bits=sum(bits_per_fetch),
            words=sum(words),
            accesses=sum(math.ceil(w / level.burst_words) for w in words),
            fetches=len(bits_per_fetch),
            link_bits=(sum(bits_per_fetch) if link_bits is None else link_bits) if link else 0,
        )

    def chunks(self) -> list[list[int]]:
        """Fetch-group sizes cut into at most MAX_PIPELINE_CHUNKS consecutive chunks."""
        sizes = self.plan.group_sizes()
        k = min(len(sizes), MAX_PIPELINE_CHUNKS)
        bounds = [round(j * len(sizes) / k) for j in range(k + 1)]
        return [sizes[bounds[j] : bounds[j + 1]] for j in range(k)]

    def forward(self, c: int, groups: list[int], i: int, layer: Layer) -> Task:
        wbits = (layer.weight_elements + layer.bias_elements) * layer.weight_bits
        out_bits = layer.output_elements * next_activation_bits(self.w, i)
        out_layer = min(i + 1, len(self.w.layers) - 1)
        return Task(
            "forward",
            "forward",
            i,
            c,
            (
                self.transfer("weights", i, "read", [wbits] * len(groups)),
                self.transfer(
                    "activations",
                    i,
                    "read",
                    [n * layer.input_elements * layer.activation_bits for n in groups],
                ),
            ),
            sum(groups) * layer.macs_per_sample,
            (self.transfer("activations", out_layer, "write", [n * out_bits for n in groups]),),
            mac_format(self.w, self.chip, self.plan, "forward", i),
        )

    def loss(self, c: int, groups: list[int]) -> Task:
        i = len(self.w.layers) - 1
        layer = self.w.layers[i]
        bits = [n * layer.output_elements * layer.error_bits for n in groups]
        return Task("error", "backward", i, c, (), 0, (self.transfer("errors", i, "write", bits),))

    def backward(self, c: int, groups: list[int], i: int, layer: Layer) -> Task:
        g = len(groups)
        source = self.plan.error_weight_source
        if source == "transport":
            wb = layer.weight_elements * layer.weight_bits
            operand = self.transfer("weights", i, "transport", [wb] * g, link=True)
        elif source == "mirror":
            wb = layer.weight_elements * layer.weight_bits
            operand = self.transfer("weight_mirror", i, "read", [wb] * g)
        elif source == "feedback":
            fb = layer.weight_elements * layer.feedback_bits
            operand = self.transfer("feedback_weights", i, "read", [fb] * g)
        else:
            operand = Transfer(
                None,
                "feedback_weights",
                "generate",
                0,
                0,
                0,
                g,
                generated_values=layer.weight_elements * g,
            )
        err_in = [n * layer.output_elements * layer.error_bits for n in groups]
        below = self.w.layers[i - 1]
        err_out = [n * layer.input_elements * below.error_bits for n in groups]
        return Task(
            "error",
            "backward",
            i,
            c,
            (self.transfer("errors", i, "read", err_in), operand),
            sum(groups) * layer.macs_per_sample,
            (self.transfer("errors", i - 1, "write", err_out),),
            mac_format(self.w, self.chip, self.plan, "backward", i),
        )

    def gradient(self, c: int, first_group: int, groups: list[int], i: int, layer: Layer) -> Task:
        gbits = (layer.weight_elements + layer.bias_elements) * self.chip.gradient_bits
        # Each fetch group adds its share into ΔW in memory: the first group only writes.
        reads = [gbits] * (len(groups) - (first_group == 0))
        loads = [
            self.transfer(
                "activations",
                i,
                "read",
                [n * layer.input_elements * layer.activation_bits for n in groups],
            ),
            self.transfer(
                "errors", i, "read", [n * layer.output_elements * layer.error_bits for n in groups]
            ),
        ]
        if reads:
            loads.append(self.transfer("gradients", i, "read", reads))
        return Task(
            "update",
            "gradient",
            i,
            c,
            tuple(loads),
            sum(groups) * layer.macs_per_sample,
            (self.transfer("gradients", i, "write", [gbits] * len(groups)),),
            mac_format(self.w, self.chip, self.plan, "gradient", i),
        )

    def update(self, i: int, layer: Layer) -> Task:
        params = layer.weight_elements + layer.bias_elements
        state = self.w.optimizer_state_per_weight
        loads = [
            self.transfer("gradients", i, "read", [params * self.chip.gradient_bits]),
            self.transfer("weights", i, "read", [params * layer.weight_bits]),
        ]
        stores = [self.transfer("weights", i, "write", [params * layer.weight_bits])]
        if state:
            sbits = [params * state * self.chip.optimizer_state_bits]
            loads.append(self.transfer("optimizer_state", i, "read", sbits))
            stores.append(self.transfer("optimizer_state", i, "write", sbits))
        if self.plan.error_weight_source == "mirror" and i > 0:  # layer 0 has no mirror
            wb = [layer.weight_elements * layer.weight_bits]
            stores.append(self.transfer("weight_mirror", i, "write", wb, link=True))
        fmt = mac_format(self.w, self.chip, self.plan, "update", i)
        return Task(
            "update", "update", i, 0, tuple(loads), params * (1 + state), tuple(stores), fmt
        )

    def init(self, i: int, layer: Layer) -> Task | None:
        """The one-time set-up a rule needs beyond the common random init of W.

        Layer 0 needs none: it sends no error down, so it has no mirror and no B.
        """
        if i == 0:
            return None
        n = layer.weight_elements
        wb, fb = [n * layer.weight_bits], [n * layer.feedback_bits]
        kind, source = self.plan.rule.kind, self.plan.error_weight_source
        storage = self.chip.feedback_storage
        loads: list[Transfer] = []
        stores: list[Transfer] = []
        if kind == "bp" and source == "mirror":
            loads.append(self.transfer("weights", i, "read", wb))
            stores.append(self.transfer("weight_mirror", i, "write", wb, link=True))
        elif kind == "fa" and storage in ("sram", "dram"):
            stores.append(self.transfer("feedback_weights", i, "write", fb))
        elif kind == "ifa" and storage in ("sram", "dram"):
            # B = W₀: read the initial forward weights, carry them to the feedback store.
            loads.append(self.transfer("weights", i, "read", wb))
            stores.append(self.transfer("feedback_weights", i, "write", fb, link=True))
        elif kind == "ifa":
            # B is fixed (ROM) or regenerated (PRNG): derive W₀ from it instead.
            if storage == "rom":
                loads.append(self.transfer("feedback_weights", i, "read", fb))
            else:
                loads.append(
                    Transfer(None, "feedback_weights", "generate", 0, 0, 0, 1, generated_values=n)
                )
            stores.append(self.transfer("weights", i, "write", wb, link=True, link_bits=fb[0]))
        if not loads and not stores:
            return None
        return Task("init", INIT_PHASE, i, 0, tuple(loads), 0, tuple(stores))


def lower_step(workload: Workload, chip: Chip, plan: Plan) -> list[list[Task]]:
    """The tasks of one training step, per pipeline chunk (``update`` tasks in the last list).

    Chunk ``c`` holds, in order: forward tasks (layer 0 up), the loss error, backward tasks
    (top layer down to layer 1), gradient tasks (top down). The final list holds the updates.
    """
    low = _Lowerer(workload, chip, plan)
    layers = workload.layers
    out: list[list[Task]] = []
    first_group = 0
    for c, groups in enumerate(low.chunks()):
        tasks = [low.forward(c, groups, i, layer) for i, layer in enumerate(layers)]
        tasks.append(low.loss(c, groups))
        tasks += [low.backward(c, groups, i, layers[i]) for i in range(len(layers) - 1, 0, -1)]
        tasks += [
            low.gradient(c, first_group, groups, i, layers[i])
            for i in range(len(layers) - 1, -1, -1)
        ]
        first_group += len(groups)
        out.append(tasks)
    out.append([low.update(i, layers[i]) for i in range(len(layers) - 1, -1, -1)])
    return out


def lower_init(workload: Workload, chip: Chip, plan: Plan) -> list[Task]:
    """The one-time init tasks of a rule (IFA's alignment, BP's first mirror copy, FA's B)."""
    low = _Lowerer(workload, chip, plan)
    tasks = [low.init(i, layer) for i, layer in enumerate(workload.layers)]
    return [t for t in tasks if t is not None]
