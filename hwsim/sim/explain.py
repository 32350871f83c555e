"""Explaining the simulated numbers: BP's gap to every other rule, by cause, and each rule's floor.

Torch-free. Everything here is computed from counts and energies the simulator already priced;
nothing is estimated. Definitions (docs/simulator.md, "Explaining the gap, and the floor"):

* :func:`explain_gap` splits ``E(BP) − E(rule)`` of one step into causes: the wire and the
  memory reads of weight transport (BP's W, or a sign-concordant rule's sign), mirror
  synchronization traffic (the mirror's writes, the staging write and read of a sync through
  DRAM, and their wire) and backward reads, the rule's feedback-weight reads (negative), PRNG
  generation in the error phase, the feedback update (Kolen–Pollack's B updates, brSF's redraws),
  the error phase's error reads (DFA reads the top error), the backward MACs' price difference
  (``mac_width``) and count difference (``error_macs``), W's update reads and writes
  (``weight_updates``: on arrays each rule reprograms the fraction of levels it changed), the
  leakage difference (from the
  latency difference), and ``other`` = the residual (placement differences: tensors spilled to
  another level because B or a mirror took the room), so that the causes sum to the difference
  exactly. The one-time init difference is
  reported apart. Latency: per-phase differences and the stall differences of each unit.
* :func:`energy_floor` is a rule's compulsory energy of one step: every stored tensor of every
  layer touched once at its home level (each stored bit read once; those the step produces or
  updates also written once) plus the step's MACs at their price; no interconnect, no PRNG, no
  leakage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwsim.core.rules import Rule
from hwsim.core.workload import Workload
from hwsim.sim.chip import Chip
from hwsim.sim.counting import CountKey, Counts
from hwsim.sim.dataflow import PHASES, Plan, stored_bits
from hwsim.sim.moves import FEED
from hwsim.sim.pricing import Energy

if TYPE_CHECKING:  # api imports this module; the annotation alone needs RuleResult
    from hwsim.sim.api import RuleResult, StepResult

#: Causes of BP − rule energy per step, in report order; ``other`` is the residual.
CAUSES = (
    "transport_wire",
    "transport_reads",
    "mirror_sync",
    "mirror_reads",
    "feedback_reads",
    "prng_generation",
    "feedback_update",
    "error_reads",
    "mac_width",
    "error_macs",
    "weight_updates",
    "leakage",
    "other",
)
#: Causes a saved run written before they existed may lack (read as 0 there).
NEW_CAUSES = ("feedback_update", "error_reads", "error_macs", "weight_updates")
#: Short human labels of :data:`CAUSES`.
CAUSE_LABELS = {
    "transport_wire": "transport wire",
    "transport_reads": "transport reads",
    "mirror_sync": "mirror sync",
    "mirror_reads": "mirror reads",
    "feedback_reads": "feedback reads",
    "prng_generation": "PRNG generation",
    "feedback_update": "feedback update",
    "error_reads": "error-phase error reads",
    "mac_width": "MAC width",
    "error_macs": "error-phase MAC count",
    "weight_updates": "W update writes",
    "leakage": "leakage",
    "other": "other / placement",
}
#: The causes netted for the leading cause: the error unit's weight operand (BP's W read for
#: transport or its mirror read, against the rule's B read or regenerated). Equal sizes read
#: from equally priced memories cancel, which is why they are judged together.
OPERAND_CAUSES = ("transport_reads", "mirror_reads", "feedback_reads", "prng_generation")
#: Keys of :attr:`EnergyGap.net_causes_pj`, in report order.
NET_CAUSES = (
    "transport_wire",
    "mirror_sync",
    "operand_net",
    "feedback_update",
    "error_reads",
    "mac_width",
    "error_macs",
    "weight_updates",
    "leakage",
    "other",
)
CAUSE_LABELS["operand_net"] = "error-weight operand, net"
#: Units whose stall cycles are compared; ``error`` waits for the weight memory under BP.
UNITS = ("forward", "error", "update")
#: Stored tensors the step produces or updates (written once in the floor); B is only read
#: (but KP's and brSF's, see :func:`written_bits`).
WRITTEN_TENSORS = (
    "weights",
    "weight_mirror",
    "optimizer_state",
    "gradients",
    "activations",
    "errors",
)


@dataclass(frozen=True)
class EnergyGap:
    """``bp_pj − rule_pj`` of one step, split into :data:`CAUSES` (they sum to it exactly)."""

    bp_pj: float
    rule_pj: float
    difference_pj: float
    causes_pj: dict[str, float]
    #: one-time init energy, BP − rule (not part of the per-step difference)
    init_difference_pj: float
    #: ``other`` named: BP − rule of what no cause claims, by tensor (accesses and wire of that
    #: tensor where the two rules place or walk it differently), ``macs`` for forward and
    #: gradient MACs; sums to ``other`` (to rounding)
    other_by_tensor_pj: dict[str, float] = field(default_factory=dict)

    @property
    def shares(self) -> dict[str, float | None]:
        """Each cause ÷ the difference (``None`` when the difference is 0)."""
        d = self.difference_pj
        return {k: (v / d if d else None) for k, v in self.causes_pj.items()}

    @property
    def net_causes_pj(self) -> dict[str, float]:
        """:data:`CAUSES` with the four operand causes summed into ``operand_net``."""
        out = {k: v for k, v in self.causes_pj.items() if k not in OPERAND_CAUSES}
        out["operand_net"] = math.fsum(self.causes_pj[k] for k in OPERAND_CAUSES)
        return {k: out[k] for k in NET_CAUSES}

    @property
    def leading_cause(self) -> str:
        """The key of :attr:`net_causes_pj` of largest magnitude (the first in
        :data:`NET_CAUSES` order on a tie)."""
        net = self.net_causes_pj
        return max(NET_CAUSES, key=lambda k: (abs(net[k]), -NET_CAUSES.index(k)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/simulator.md)."""
        return {
            "bp": self.bp_pj,
            "rule": self.rule_pj,
            "difference": self.difference_pj,
            "causes": dict(self.causes_pj),
            "shares": self.shares,
            "net_causes": self.net_causes_pj,
            "leading_cause": self.leading_cause,
            "init_difference": self.init_difference_pj,
            "other_by_tensor": dict(self.other_by_tensor_pj),
        }


@dataclass(frozen=True)
class LatencyGap:
    """``bp − rule`` cycles of one step, per phase and in each unit's stalls.

    Phases overlap (the units are pipelined), so the per-phase differences need not sum to the
    step difference; they say where time moved, not a partition of it.
    """

    bp_cycles: int
    rule_cycles: int
    difference_cycles: int
    by_phase_cycles: dict[str, int]
    stall_difference_cycles: dict[str, int]

    @property
    def error_stall_difference_cycles(self) -> int:
        """Extra cycles BP's error unit waited (for the weight memory, under transport)."""
        return self.stall_difference_cycles.get("error", 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/simulator.md)."""
        return {
            "bp": self.bp_cycles,
            "rule": self.rule_cycles,
            "difference": self.difference_cycles,
            "by_phase": dict(self.by_phase_cycles),
            "stall_difference": dict(self.stall_difference_cycles),
            "error_stall_difference": self.error_stall_difference_cycles,
        }


@dataclass(frozen=True)
class GapToBP:
    """BP minus one other rule on the same chip: energy by cause, latency by phase and stall."""

    rule: str
    energy: EnergyGap
    latency: LatencyGap

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rule", "energy_pj": {...}, "latency_cycles": {...}}``."""
        return {
            "rule": self.rule,
            "energy_pj": self.energy.to_dict(),
            "latency_cycles": self.latency.to_dict(),
        }


@dataclass(frozen=True)
class Floor:
    """A rule's compulsory energy of one step (see the module docstring), in picojoules."""

    total_pj: float
    memory_pj: float
    compute_pj: float
    memory_by_level_pj: dict[str, float]
    memory_by_tensor_pj: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"total", "memory", "compute", "memory_by_level", "memory_by_tensor"}``."""
        return {
            "total": self.total_pj,
            "memory": self.memory_pj,
            "compute": self.compute_pj,
            "memory_by_level": dict(self.memory_by_level_pj),
            "memory_by_tensor": dict(self.memory_by_tensor_pj),
        }


#: How the error pass reads its weight operand: a digital read, or an array's activation.
#: how an error-phase weight operand is read: from its memory, in its arrays, or fed from the
#: innermost level into a MAC array (:mod:`hwsim.sim.spatial`)
_OPERAND_READS = ("read", "mvm", FEED)


def _access_pj(energy: Energy, keep: Callable[[CountKey], bool]) -> float:
    return math.fsum(v for k, v in energy.by_access_pj.items() if keep(k))


def _wire_pj(counts: Counts, tensor: str, phase: str, pj_per_bit: float) -> float:
    return counts.interconnect_bits.get((tensor, phase), 0) * pj_per_bit


def _generation_pj(counts: Counts, chip: Chip, update: bool) -> float:
    """PRNG energy of the values generated in the update phase (``update``) or elsewhere."""
    return math.fsum(
        v * chip.prng_energy_per_value_pj
        for phase, v in counts.generated_values.items()
        if (phase == "update") == update
    )


def _compute_pj(counts: Counts, chip: Chip, phase: str) -> float:
    return math.fsum(
        m * chip.mac_energy_for(fmt, f"{phase} MACs")
        for (p, fmt), m in counts.macs.items()
        if p == phase
    )


def _cause_of(energy: Energy, counts: Counts, cause: str, chip: Chip) -> float:
    """One rule's energy attributed to one named cause (all but ``mac_width``, ``error_macs``
    and ``other``)."""
    pj_per_bit = chip.interconnect.energy_per_bit_pj
    if cause == "transport_wire":
        return _wire_pj(counts, "weights", "backward", pj_per_bit)
    if cause == "transport_reads":
        # W read for the error pass from W's own memory: carried (transport), or its arrays
        # activated transposed (a cim chip's ``transpose``, with the extra conversions of
        # weights spread over several cells)
        return _access_pj(energy, _transport_read)
    if cause == "mirror_sync":
        # the mirror's writes, and the staging write and read of a sync through another level
        accesses = _access_pj(energy, lambda k: k[1] == "weight_mirror" and k[2] == "update")
        return accesses + _wire_pj(counts, "weight_mirror", "update", pj_per_bit)
    if cause == "mirror_reads":
        return _access_pj(
            energy,
            lambda k: k[1] == "weight_mirror" and k[2] == "backward" and k[3] in _OPERAND_READS,
        )
    if cause == "feedback_reads":
        return _access_pj(
            energy,
            lambda k: k[1] == "feedback_weights" and k[2] == "backward" and k[3] in _OPERAND_READS,
        )
    if cause == "prng_generation":
        return _generation_pj(counts, chip, update=False)
    if cause == "feedback_update":
        # KP's B read and written with W's step carried to it, brSF's redraw (generated and
        # written); the update phase's MACs, W's being the same in every rule, leave KP's
        accesses = _access_pj(energy, lambda k: k[1] == "feedback_weights" and k[2] == "update")
        return (
            accesses
            + _wire_pj(counts, "feedback_weights", "update", pj_per_bit)
            + _generation_pj(counts, chip, update=True)
            + _compute_pj(counts, chip, "update")
        )
    if cause == "weight_updates":
        # W read and written by its update: the same for every rule on a digital chip; on
        # compute-in-memory arrays only the changed weights are reprogrammed, and each rule
        # changes its own measured fraction
        return _access_pj(energy, lambda k: k[1] == "weights" and k[2] == "update")
    if cause == "error_reads":
        return _access_pj(
            energy, lambda k: k[1] == "errors" and k[2] == "backward" and k[3] == "read"
        )
    return energy.breakdown_pj["leakage"]


def _transport_read(key: CountKey) -> bool:
    """Whether an access reads W for the error phase where it lives (``transport_reads``):
    carried, activated transposed in its arrays (with the extra conversions of weights spread
    over several cells), or fed from the innermost level into the error unit's MAC array."""
    _, tensor, phase, direction = key
    return direction in ("transport", "mvm_transposed", "convert") or (
        tensor == "weights" and phase == "backward" and direction == FEED
    )


def _claimed(key: CountKey) -> bool:
    """Whether a named cause prices this access (what :func:`_cause_of` sums)."""
    _, tensor, phase, direction = key
    return (
        _transport_read(key)
        or (tensor in ("weight_mirror", "feedback_weights", "weights") and phase == "update")
        or (
            tensor in ("weight_mirror", "feedback_weights")
            and phase == "backward"
            and direction in _OPERAND_READS
        )
        or (tensor == "errors" and phase == "backward" and direction == "read")
    )


#: Interconnect traffic a named cause prices: BP's transport, a mirror's sync, KP's update of B.
_CLAIMED_WIRES = {
    ("weights", "backward"),
    ("weight_mirror", "update"),
    ("feedback_weights", "update"),
}


def other_by_tensor(bp: StepResult, rule: StepResult, chip: Chip) -> dict[str, float]:
    """What :data:`CAUSES`' ``other`` holds, by tensor: BP − rule energy of every access and
    every interconnect bit no named cause claims (the same tensor placed or walked differently
    by the two rules), and of the forward and gradient MACs (``macs``)."""
    out: dict[str, float] = defaultdict(float)
    pj_per_bit = chip.interconnect.energy_per_bit_pj
    for sign, step in ((1.0, bp), (-1.0, rule)):
        for key, pj in step.energy.by_access_pj.items():
            if not _claimed(key):
                out[key[1]] += sign * pj
        for (tensor, phase), bits in step.counts.interconnect_bits.items():
            if (tensor, phase) not in _CLAIMED_WIRES:
                out[tensor] += sign * bits * pj_per_bit
        for phase in ("forward", "gradient"):
            out["macs"] += sign * _compute_pj(step.counts, chip, phase)
    # sums of equal prices in another order leave rounding, not energy: drop it
    floor = 1e-9 * max(bp.energy.total_pj, rule.energy.total_pj)
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -abs(kv[1])) if abs(v) > floor}


def _backward_macs(counts: Counts, chip: Chip) -> tuple[int, float]:
    """The backward phase's MACs and their energy."""
    macs = sum(m for (phase, _), m in counts.macs.items() if phase == "backward")
    return macs, _compute_pj(counts, chip, "backward")


def _mac_causes(bp: Counts, rule: Counts, chip: Chip) -> tuple[float, float]:
    """(``mac_width``, ``error_macs``): BP's backward MAC energy minus the rule's, split into
    the MAC count difference at the rule's mean price per backward MAC (DFA's n_out × in_l
    MACs against W's) and the rest, BP's MACs at the price difference (B's or the sign's
    format against W's)."""
    m_bp, e_bp = _backward_macs(bp, chip)
    m_rule, e_rule = _backward_macs(rule, chip)
    price = e_rule / m_rule if m_rule else (e_bp / m_bp if m_bp else 0.0)
    count = (m_bp - m_rule) * price if m_bp != m_rule else 0.0
    return (e_bp - e_rule) - count, count


def explain_gap(bp: RuleResult, rule: RuleResult, chip: Chip) -> GapToBP:
    """BP − ``rule`` on ``chip`` for one step: energy by cause (exact), latency by phase/stall.

    Each named cause is BP's energy of that kind minus the rule's (so the rule's feedback
    reads and PRNG generation come out negative); ``other`` is the residual.
    """
    b, r = bp.step, rule.step
    difference = b.energy.total_pj - r.energy.total_pj
    causes: dict[str, float] = {}
    width, count = _mac_causes(b.counts, r.counts, chip)
    for cause in CAUSES[:-1]:
        if cause == "mac_width":
            causes[cause] = width
        elif cause == "error_macs":
            causes[cause] = count
        else:
            causes[cause] = _cause_of(b.energy, b.counts, cause, chip) - _cause_of(
                r.energy, r.counts, cause, chip
            )
    causes["other"] = difference - math.fsum(causes.values())
    energy = EnergyGap(
        bp_pj=b.energy.total_pj,
        rule_pj=r.energy.total_pj,
        difference_pj=difference,
        causes_pj=causes,
        init_difference_pj=bp.init.energy.total_pj - rule.init.energy.total_pj,
        other_by_tensor_pj=other_by_tensor(b, r, chip),
    )
    latency = LatencyGap(
        bp_cycles=b.latency_cycles,
        rule_cycles=r.latency_cycles,
        difference_cycles=b.latency_cycles - r.latency_cycles,
        by_phase_cycles={
            p: b.phase_latency_cycles.get(p, 0) - r.phase_latency_cycles.get(p, 0) for p in PHASES
        },
        stall_difference_cycles={
            u: b.stall_cycles.get(u, 0) - r.stall_cycles.get(u, 0) for u in UNITS
        },
    )
    return GapToBP(rule=rule.rule, energy=energy, latency=latency)


def gaps_to_bp(rules: Mapping[str, RuleResult], chip: Chip) -> dict[str, GapToBP]:
    """:func:`explain_gap` for every rule but ``bp``; empty when ``bp`` is not among them."""
    if "bp" not in rules:
        return {}
    return {spec: explain_gap(rules["bp"], r, chip) for spec, r in rules.items() if spec != "bp"}


def written_bits(
    workload: Workload,
    tensor: str,
    layer: int,
    bits: int,
    batch_size: int,
    rule: Rule | None = None,
) -> int:
    """Bits of a stored (tensor, layer) the step writes once in the floor.

    Feedback weights are only read, except Kolen–Pollack's B (it receives every update) and
    brSF's stored magnitudes (redrawn every batch). Layer 0's activations are the input batch,
    already in memory: only the logits are written there, when layer 0 is also the last layer.
    """
    if tensor == "feedback_weights" and rule is not None:
        return bits if rule.updates_feedback or rule.redraws_feedback else 0
    if tensor not in WRITTEN_TENSORS:
        return 0
    if tensor == "activations" and layer == 0:
        last = workload.layers[-1]
        single = len(workload.layers) == 1
        return batch_size * last.output_elements * last.activation_bits if single else 0
    return bits


def energy_floor(workload: Workload, chip: Chip, plan: Plan, counts: Counts) -> Floor:
    """The compulsory energy of one step of ``plan`` (its batch, its rule's stored tensors).

    Memory: for every (tensor, layer) the plan stores, its bits read once at the level the plan
    placed it in, ``⌈⌈bits / word_bits⌉ / burst_words⌉`` accesses × read energy, plus, for the
    tensors the step produces or updates (:func:`written_bits`), written once likewise at the
    write energy. Compute: ``counts``' MACs at their price. No interconnect, PRNG or leakage.
    """
    by_level: dict[str, float] = {}
    by_tensor: dict[str, float] = {}
    for row in stored_bits(workload, chip, plan.rule, plan.batch_size):
        tensor, layer, bits = row["tensor"], row["layer"], row["bits"]
        level = chip.memory(plan.placement[(tensor, layer)])
        pj = level.words_and_accesses(bits)[1] * level.read_energy_pj
        wbits = written_bits(workload, tensor, layer, bits, plan.batch_size, plan.rule)
        if wbits:
            pj += level.words_and_accesses(wbits)[1] * level.write_energy_pj
        by_level[level.name] = by_level.get(level.name, 0.0) + pj
        by_tensor[tensor] = by_tensor.get(tensor, 0.0) + pj
    compute = math.fsum(
        macs * chip.mac_energy_for(mac_format, f"{phase} MACs")
        for (phase, mac_format), macs in counts.macs.items()
    )
    memory = math.fsum(by_level.values())
    return Floor(
        total_pj=memory + compute,
        memory_pj=memory,
        compute_pj=compute,
        memory_by_level_pj=by_level,
        memory_by_tensor_pj=by_tensor,
    )
