"""The simulator's Python API: ``simulate(workload, chip, rules)`` and its frozen results.

Torch-free. Every rule is simulated once per distinct batch size of the workload (the last
partial batch differs); the closed-form counts are checked against the simulation's own tallies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.resources import DEFAULT_CHIP
from hwsim.core.rules import Rule, parse_rules
from hwsim.core.workload import Workload, load_workload, workload_from_dict
from hwsim.sim import spatial
from hwsim.sim.area import OwnSilicon, own_silicon
from hwsim.sim.chip import CIM_FORMAT, AreaPart, Chip, load_chip
from hwsim.sim.counting import Counts, count_init, count_step_by_layer
from hwsim.sim.dataflow import (
    PHASES,
    Plan,
    check_cim_rule,
    check_feedback_storage,
    fetch_dataflow,
    fetch_moves,
    in_array,
    mac_format,
    stored_bits,
)
from hwsim.sim.explain import Floor, GapToBP, energy_floor, gaps_to_bp
from hwsim.sim.mapper import free_bits, make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.pricing import ENERGY_PARTS, Energy, price
from hwsim.sim.simulation import TimelineEvent, simulate_init, simulate_step
from hwsim.sim.updates import feedback_update_moves
from hwsim.sim.wear import Wear, step_wear


@dataclass(frozen=True)
class StepResult:
    """One training step of ``batch_size`` samples: counts, energy and time."""

    batch_size: int
    counts: Counts
    energy: Energy
    latency_cycles: int
    latency_s: float
    phase_latency_cycles: dict[str, int]
    utilization: dict[str, float]
    stall_cycles: dict[str, int]
    events: int
    timeline: tuple[TimelineEvent, ...] | None = None
    #: layer name → that layer's share of ``counts`` (they add up to ``counts`` exactly)
    counts_by_layer: dict[str, Counts] = field(default_factory=dict)
    #: layer name → the price of its counts: memory, interconnect, compute and PRNG generation;
    #: leakage is the step's, not a layer's, and stays 0 here
    energy_by_layer: dict[str, Energy] = field(default_factory=dict)


@dataclass(frozen=True)
class InitResult:
    """A rule's one-time init (IFA's B = W₀, BP's first mirror copy, FA's or KP's B, DFA's D,
    the first sign mirror, brSF/frSF's magnitudes), apart from steps."""

    counts: Counts
    energy: Energy
    latency_cycles: int


@dataclass(frozen=True)
class RunTotals:
    """Totals of a whole training run: every step of every epoch, plus the init once."""

    epochs: int
    steps_per_epoch: int
    steps: int
    energy: Energy
    epoch_energy: Energy
    latency_cycles: int
    latency_s: float
    epoch_latency_cycles: int
    weight_transport_bits: int
    sync_write_bits: int
    feedback_read_bits: int
    macs: int


@dataclass(frozen=True)
class Spill:
    """A (tensor, layer) placed away from its class's level: ``why`` is ``full`` (that level
    had no room left for it) or ``cheaper`` (it had room, and the mapper found the step
    cheaper with the tensor elsewhere)."""

    tensor: str
    layer: str
    preferred: str
    placed: str
    accesses_per_bit: float
    why: str = "full"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``spills`` in docs/simulator.md)."""
        return {
            "tensor": self.tensor,
            "layer": self.layer,
            "preferred": self.preferred,
            "placed": self.placed,
            "accesses_per_bit": self.accesses_per_bit,
            "why": self.why,
        }


@dataclass(frozen=True)
class RuleResult:
    """Everything simulated for one learning rule; ``step`` is a step of the nominal batch."""

    rule: str
    #: layer name → phase → the loop order chosen for it (``hwsim.sim.loops.Walk.describe``)
    loop_orders: dict[str, dict[str, str]]
    #: ``accumulate`` or ``fused`` (the chip's ``training.update``)
    update: str
    placement: dict[str, dict[str, str]]
    step: StepResult
    steps_by_batch_size: dict[int, StepResult]
    init: InitResult
    run_totals: RunTotals | None
    #: the compulsory energy of a nominal step (hwsim.sim.explain.energy_floor)
    floor: Floor | None = None
    #: tensor → layer → bits moved per step ÷ bits stored (the order of allocation)
    accesses_per_bit: dict[str, dict[str, float]] = field(default_factory=dict)
    #: stored tensors that did not get their class's level (it was full), innermost-first order
    spills: tuple[Spill, ...] = ()
    #: program operations per cell and lifetime of the non-volatile levels (None: the chip has
    #: none; :mod:`hwsim.sim.wear`)
    wear: Wear | None = None
    #: the silicon of the rule's own stored tensors (BP's mirror, B…; :mod:`hwsim.sim.area`)
    own_silicon: dict[str, OwnSilicon] = field(default_factory=dict)
    #: layer name → phase → the loop nest the mapper chose (``hwsim.sim.loops.Walk.to_dict``)
    mapping: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: what the mapper searched for the nominal step (``hwsim.sim.mapper.SearchStats``)
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def energy_over_floor(self) -> float | None:
        """Energy of one step ÷ its floor (``None`` without a floor or with a zero floor)."""
        if self.floor is None or not self.floor.total_pj:
            return None
        return self.step.energy.total_pj / self.floor.total_pj

    @property
    def weight_transport_bits(self) -> int:
        """W bits carried over the interconnect to the error unit in one step: BP's W, or the
        sign-concordant rules' sign (1 bit per weight); 0 in mirror mode and for other rules."""
        return self.step.counts.weight_transport_bits

    @property
    def sync_write_bits(self) -> int:
        """Bits written into a mirror in one step: BP's mirror of W, or the sign-concordant
        rules' 1-bit sign mirror (0 outside mirror mode)."""
        return self.step.counts.sync_write_bits

    @property
    def feedback_read_bits(self) -> int:
        """Bits of stored feedback weights (B, DFA's D, brSF/frSF's magnitudes) read in one
        step's backward phase."""
        return self.step.counts.feedback_read_bits

    @property
    def macs(self) -> int:
        """MACs of one step, all phases."""
        return self.step.counts.total_macs

    @property
    def energy_pj(self) -> float:
        """Total energy of one step."""
        return self.step.energy.total_pj

    @property
    def latency_cycles(self) -> int:
        """Cycles of one step."""
        return self.step.latency_cycles

    @property
    def latency_s(self) -> float:
        """Seconds of one step."""
        return self.step.latency_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented in docs/simulator.md."""
        step = self.step
        out: dict[str, Any] = {
            "rule": self.rule,
            "batch_size": step.batch_size,
            "update": self.update,
            "loop_orders": self.loop_orders,
            "mapping": self.mapping,
            "search": self.search,
            "placement": self.placement,
            "accesses_per_bit": self.accesses_per_bit,
            "spills": [s.to_dict() for s in self.spills],
            "counts": counts_to_dict(step.counts, step.energy),
            "counts_by_layer": {
                layer: counts_to_dict(c, step.energy_by_layer[layer])
                for layer, c in step.counts_by_layer.items()
            },
            "energy_by_layer_pj": {
                layer: energy_to_dict(e) for layer, e in step.energy_by_layer.items()
            },
            "interconnect_bits": step.counts.total_interconnect_bits,
            "weight_transport_bits": self.weight_transport_bits,
            "sync_write_bits": self.sync_write_bits,
            "feedback_read_bits": self.feedback_read_bits,
            "feedback_generated_values": step.counts.total_generated_values,
            "macs": self.macs,
            "macs_by_phase": step.counts.macs_by_phase(),
            "macs_by_format": _macs_by_format(step.counts),
            "energy_pj": energy_to_dict(step.energy),
            "latency_cycles": step.latency_cycles,
            "latency_s": step.latency_s,
            "phase_latency_cycles": step.phase_latency_cycles,
            "utilization": step.utilization,
            "stall_cycles": step.stall_cycles,
            "simulation_events": step.events,
            "init": {
                "counts": counts_to_dict(self.init.counts, self.init.energy),
                "interconnect_bits": self.init.counts.total_interconnect_bits,
                "feedback_generated_values": self.init.counts.total_generated_values,
                "energy_pj": energy_to_dict(self.init.energy),
                "latency_cycles": self.init.latency_cycles,
            },
            "run_totals": None,
            "floor_pj": None if self.floor is None else self.floor.to_dict(),
            "energy_over_floor": self.energy_over_floor,
            "wear": None if self.wear is None else self.wear.to_dict(),
            "own_silicon": {t: s.to_dict() for t, s in self.own_silicon.items()},
        }
        if step.timeline is not None:
            out["timeline"] = [
                [e.resource, e.phase, e.tensor, e.layer, e.start_cycle, e.end_cycle]
                for e in step.timeline
            ]
        if self.run_totals is not None:
            rt = self.run_totals
            out["run_totals"] = {
                "epochs": rt.epochs,
                "steps_per_epoch": rt.steps_per_epoch,
                "steps": rt.steps,
                "energy_pj": energy_to_dict(rt.energy),
                "latency_cycles": rt.latency_cycles,
                "latency_s": rt.latency_s,
                "weight_transport_bits": rt.weight_transport_bits,
                "sync_write_bits": rt.sync_write_bits,
                "feedback_read_bits": rt.feedback_read_bits,
                "macs": rt.macs,
                "per_epoch": {
                    "energy_pj": energy_to_dict(rt.epoch_energy),
                    "latency_cycles": rt.epoch_latency_cycles,
                },
                "init_included": True,
            }
        return out


@dataclass(frozen=True)
class SimulationResult:
    """The results of every rule on one chip and one workload."""

    chip: str
    chip_path: str | None
    clock_hz: float
    workload: dict[str, Any]
    rules: dict[str, RuleResult]
    #: BP − rule for every other rule (hwsim.sim.explain); empty when BP was not simulated
    gaps_to_bp: dict[str, GapToBP] = field(default_factory=dict)
    #: the chip's silicon, part by part (:meth:`hwsim.sim.chip.Chip.areas`)
    area: tuple[AreaPart, ...] = ()

    @property
    def area_mm2(self) -> float:
        """The chip's total silicon, mm² (every part whose area is known)."""
        return sum(part.mm2 for part in self.area if part.mm2 is not None)

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready document; ``rules`` is keyed by canonical rule spec. Each rule but
        ``bp`` carries ``gap_to_bp`` when BP is among the rules."""
        rules = {spec: r.to_dict() for spec, r in self.rules.items()}
        for spec, gap in self.gaps_to_bp.items():
            rules[spec]["gap_to_bp"] = gap.to_dict()
        return {
            "format": "hwsim-simulation",
            "version": 1,
            "chip": {
                "name": self.chip,
                "path": self.chip_path,
                "clock_hz": self.clock_hz,
                "area": {
                    "total_mm2": self.area_mm2,
                    "parts": [part.to_dict() for part in self.area],
                },
            },
            "workload": self.workload,
            "rules": rules,
        }


def counts_to_dict(counts: Counts, energy: Energy) -> dict[str, Any]:
    """Nest counts as level → tensor → phase → direction → {bits, words, accesses, energy_pj}."""
    out: dict[str, Any] = {}
    for key, c in counts.accesses.items():
        level, tensor, phase, direction = key
        out.setdefault(level, {}).setdefault(tensor, {}).setdefault(phase, {})[direction] = {
            "bits": c.bits,
            "words": c.words,
            "accesses": c.accesses,
            "energy_pj": energy.by_access_pj.get(key, 0.0),
        }
    return out


def _macs_by_format(counts: Counts) -> dict[str, dict[str, int]]:
    """MACs per phase and number format: ``{phase: {format: MACs}}``."""
    out: dict[str, dict[str, int]] = {}
    for (phase, name), macs in counts.macs.items():
        out.setdefault(phase, {})[name] = macs
    return out


def energy_to_dict(energy: Energy) -> dict[str, Any]:
    """``total`` plus the ``breakdown`` it is the sum of, and the splits by level and phase."""
    return {
        "total": energy.total_pj,
        "breakdown": {k: energy.breakdown_pj[k] for k in ENERGY_PARTS},
        "memory_by_level": dict(energy.memory_by_level_pj),
        "by_phase": dict(energy.by_phase_pj),
    }


def resolve_workload(workload: Workload | Mapping[str, Any] | str | Path) -> Workload:
    """Accept a :class:`Workload`, a workload document, a ``workload.json`` path or a model spec."""
    if isinstance(workload, Workload):
        return workload
    if isinstance(workload, Mapping):
        return workload_from_dict(dict(workload))
    text = str(workload)
    if text.lower().startswith("mlp:") or text.lower() == "resnet18":
        return workload_from_dict(build_workload(text), text)
    return load_workload(workload)


def simulate(
    workload: Workload | Mapping[str, Any] | str | Path,
    chip: Chip | str | Path = DEFAULT_CHIP,
    rules: str | Sequence[str | Rule] = "bp,fa,ifa",
    *,
    timeline: bool = False,
) -> SimulationResult:
    """Simulate ``workload`` trained on ``chip`` with each rule; return frozen results.

    ``rules`` is a comma-separated spec string or a list (``bp``, ``fa``, ``ifa``, ``ifa:30``).
    ``timeline=True`` records every busy interval of the nominal step (for plots).
    Bad input raises :class:`hwsim.core.errors.InputError`.
    """
    work = resolve_workload(workload)
    the_chip = chip if isinstance(chip, Chip) else load_chip(chip)
    if isinstance(rules, str):
        parsed = parse_rules(rules)
    else:
        parsed = parse_rules([r.spec if isinstance(r, Rule) else r for r in rules])
    for unit in ("forward", "error", "update"):
        if unit not in the_chip.macs_per_cycle:
            raise InputError(f"chip {the_chip.name!r}: compute.{unit}.macs_per_cycle is missing")
    results = {rule.spec: _simulate_rule(work, the_chip, rule, timeline) for rule in parsed}
    return SimulationResult(
        chip=the_chip.name,
        chip_path=the_chip.path,
        clock_hz=the_chip.clock_hz,
        workload=workload_summary(work),
        rules=results,
        gaps_to_bp=gaps_to_bp(results, the_chip),
        area=tuple(the_chip.areas()),
    )


def unsupported_reason(chip: Chip | str | Path, rule: str | Rule) -> str | None:
    """Why ``rule`` cannot train on ``chip`` (the :class:`InputError` :func:`simulate` would
    raise: Kolen–Pollack with ``feedback_storage`` prng or rom, brSF with rom, a rule a chip's
    compute-in-memory arrays do not run), or ``None`` when
    it can. For callers that simulate many rules on many chips and skip what cannot run."""
    the_chip = chip if isinstance(chip, Chip) else load_chip(chip)
    the_rule = rule if isinstance(rule, Rule) else parse_rules(rule)[0]
    try:
        check_feedback_storage(the_chip, the_rule)
        check_cim_rule(the_chip, the_rule)
    except InputError as err:
        return str(err)
    return None


def workload_summary(work: Workload) -> dict[str, Any]:
    """The few workload facts a report needs, its assumptions included (bit widths and number
    formats as the distinct ones over the layers, optimizer state tensors per weight)."""

    def widths(field: str) -> list[Any]:
        return sorted({getattr(la, field) for la in work.layers})

    return {
        "model": work.model,
        "layers": len(work.layers),
        "weights": sum(la.weight_elements + la.bias_elements for la in work.layers),
        "weight_bits": widths("weight_bits"),
        "activation_bits": widths("activation_bits"),
        "feedback_bits": widths("feedback_bits"),
        "error_bits": widths("error_bits"),
        "weight_format": widths("weight_format"),
        "activation_format": widths("activation_format"),
        "feedback_format": widths("feedback_format"),
        "error_format": widths("error_format"),
        "optimizer_state_per_weight": work.optimizer_state_per_weight,
        "batch_size": work.batch_size,
        "batches": [{"batch_size": b, "count": c} for b, c in work.batches],
        "epochs": work.epochs,
        "steps_per_epoch": work.steps_per_epoch if work.epochs else None,
    }


def _array_use(work: Workload, chip: Chip, plan: Plan, phase: str, i: int) -> dict[str, Any] | None:
    """How (phase, layer i) used its unit's MAC array: its shape, the dataflow of each fetch
    (name → fetches), cycles, MACs and utilization; None without an array (or in cim arrays)."""
    array = spatial.array_of(chip, phase)
    if array is None or in_array(chip, plan, phase, i):
        return None
    dataflows: dict[str, int] = {}
    cycles = macs = 0
    for run in plan.walks[(phase, i)].fetch_classes():
        found = fetch_dataflow(work, chip, plan, phase, i, run)
        assert found is not None
        dataflows[found[1]] = dataflows.get(found[1], 0) + run.count
        cycles += found[0] * run.count
        macs += fetch_moves(work, chip, plan, phase, i, run)[1] * run.count
    return {
        "rows": array.rows,
        "cols": array.cols,
        "dataflow": dataflows,
        "cycles": cycles,
        "macs": macs,
        "utilization": spatial.utilization(array, macs, cycles),
    }


def _simulate_rule(work: Workload, chip: Chip, rule: Rule, timeline: bool) -> RuleResult:
    nominal = work.batches[0][0] if work.batches else work.batch_size
    sizes = sorted({nominal, *(b for b, _ in work.batches)}, key=lambda b: b != nominal)
    steps: dict[int, StepResult] = {}
    for size in sizes:
        plan = make_plan(work, chip, rule, size)
        if not steps:
            _check_mac_formats(work, chip, plan)
        closed, by_layer = count_step_by_layer(work, chip, plan)
        _check_layers_add_up(closed, by_layer, rule, size)
        sim = simulate_step(work, chip, plan, timeline=timeline and size == nominal)
        _check_agree(closed, sim.counts, rule, size)
        energy = price(closed, chip, sim.latency_cycles)
        _check_finite(energy, chip, rule, size)
        steps[size] = StepResult(
            batch_size=size,
            counts=closed,
            energy=energy,
            latency_cycles=sim.latency_cycles,
            latency_s=sim.latency_cycles / chip.clock_hz,
            phase_latency_cycles={p: sim.phase_latency_cycles.get(p, 0) for p in PHASES},
            utilization=sim.utilization,
            stall_cycles=sim.stall_cycles,
            events=sim.events,
            timeline=sim.timeline,
            counts_by_layer=by_layer,
            energy_by_layer={name: price(c, chip, 0) for name, c in by_layer.items()},
        )
        if size == nominal:
            nominal_plan = plan
    init_counts = count_init(work, chip, nominal_plan)
    init_sim = simulate_init(work, chip, nominal_plan)
    _check_agree(init_counts, init_sim.counts, rule, nominal)
    init = InitResult(
        init_counts, price(init_counts, chip, init_sim.latency_cycles), init_sim.latency_cycles
    )
    placement: dict[str, dict[str, str]] = {}
    intensity: dict[str, dict[str, float]] = {}
    spills: list[Spill] = []
    free = free_bits(work, chip, nominal_plan)
    bits = {
        (r["tensor"], r["layer"]): r["bits"]
        for r in stored_bits(work, chip, rule, nominal_plan.batch_size)
    }
    for (tensor, i), level in nominal_plan.placement.items():
        name = work.layers[i].name
        placement.setdefault(tensor, {})[name] = level
        per_bit = nominal_plan.accesses_per_bit.get((tensor, i), 0.0)
        intensity.setdefault(tensor, {})[name] = per_bit
        preferred = chip.placement[tensor]
        if level != preferred:
            room = free[preferred] >= bits[(tensor, i)] and chip.memory(preferred).cim is None
            why = "cheaper" if room else "full"
            spills.append(Spill(tensor, name, preferred, level, per_bit, why))
    loop_orders: dict[str, dict[str, str]] = {}
    mapping: dict[str, dict[str, dict[str, Any]]] = {}
    for (phase, i), walk in sorted(nominal_plan.walks.items(), key=lambda kv: kv[0][1]):
        loop_orders.setdefault(work.layers[i].name, {})[phase] = walk.describe()
        nest = walk.to_dict()
        nest["array"] = _array_use(work, chip, nominal_plan, phase, i)
        mapping.setdefault(work.layers[i].name, {})[phase] = nest
    return RuleResult(
        rule=rule.spec,
        loop_orders=loop_orders,
        mapping=mapping,
        search=nominal_plan.search.to_dict() if nominal_plan.search is not None else {},
        update=nominal_plan.update,
        placement=placement,
        step=steps[nominal],
        steps_by_batch_size=steps,
        init=init,
        run_totals=_run_totals(work, chip, steps, init) if work.epochs else None,
        floor=energy_floor(work, chip, nominal_plan, steps[nominal].counts),
        accesses_per_bit=intensity,
        spills=tuple(spills),
        wear=step_wear(work, chip, nominal_plan, steps[nominal].counts_by_layer),
        own_silicon=own_silicon(work, chip, nominal_plan),
    )


def _check_mac_formats(work: Workload, chip: Chip, plan: Plan) -> None:
    """Refuse, before simulating, a MAC whose number format no unit of the chip runs; the
    :class:`InputError` names the phase, the layer and the rule (``Chip.mac_unit_for``)."""
    for phase in PHASES:
        for i, layer in enumerate(work.layers):
            if phase == "backward" and i == 0:
                continue  # layer 0 sends no error down
            what = f"{phase} MACs of layer {layer.name!r} ({plan.rule.spec})"
            fmt = mac_format(work, chip, plan, phase, i)
            if fmt != CIM_FORMAT:  # an array's product needs no MAC unit
                chip.mac_unit_for(fmt, what)
    for i, layer in enumerate(work.layers):
        _, macs, fmt = feedback_update_moves(work, chip, plan, i)
        if macs:  # Kolen–Pollack's update of B
            chip.mac_unit_for(
                fmt, f"feedback update MACs of layer {layer.name!r} ({plan.rule.spec})"
            )


#: Where the numbers of each energy part come from in a chip file (for overflow errors).
_PART_KEYS = {
    "memory": "memories",
    "interconnect": "interconnect.energy_per_bit_pj",
    "compute": "compute.mac_energy_pj",
    "feedback_generation": "training.prng_energy_per_value_pj",
    "leakage": "memories",
}


def _check_finite(energy: Energy, chip: Chip, rule: Rule, size: int) -> None:
    """An energy that overflows to infinity is bad input (absurd chip numbers), never output."""
    for part in ENERGY_PARTS:
        if not math.isfinite(energy.breakdown_pj[part]):
            raise InputError(
                f"{chip.where(_PART_KEYS[part])}: the {part} energy of one {rule.spec} step "
                f"(batch {size}) overflows ({energy.breakdown_pj[part]} pJ): the numbers there "
                "are too large to add up"
            )


def _check_agree(closed: Counts, simulated: Counts, rule: Rule, size: int) -> None:
    # A disagreement is a bug in the simulator, not bad input: fail loudly.
    if closed != simulated:
        raise RuntimeError(
            f"internal error: simulated counts differ from the closed form ({rule.spec}, "
            f"batch {size})"
        )


def _check_layers_add_up(
    closed: Counts, by_layer: Mapping[str, Counts], rule: Rule, size: int
) -> None:
    # The per-layer split is the same tally kept apart: a difference is a bug, not bad input.
    layers = list(by_layer.values())
    total = sum(layers[1:], layers[0]) if layers else None
    if total is not None and total != closed:
        raise RuntimeError(
            f"internal error: per-layer counts do not add up to the step's ({rule.spec}, "
            f"batch {size})"
        )


def _run_totals(
    work: Workload, chip: Chip, steps: dict[int, StepResult], init: InitResult
) -> RunTotals:
    epochs = work.epochs or 0
    epoch_energy: Energy | None = None
    epoch_counts: Counts | None = None
    epoch_cycles = 0
    for size, count in work.batches:
        step = steps[size]
        energy, counts = step.energy.scaled(count), step.counts.scaled(count)
        epoch_energy = energy if epoch_energy is None else epoch_energy + energy
        epoch_counts = counts if epoch_counts is None else epoch_counts + counts
        epoch_cycles += step.latency_cycles * count
    assert epoch_energy is not None and epoch_counts is not None
    run_counts = epoch_counts.scaled(epochs) + init.counts
    run_cycles = epoch_cycles * epochs + init.latency_cycles
    return RunTotals(
        epochs=epochs,
        steps_per_epoch=work.steps_per_epoch,
        steps=work.steps_per_epoch * epochs,
        energy=epoch_energy.scaled(epochs) + init.energy,
        epoch_energy=epoch_energy,
        latency_cycles=run_cycles,
        latency_s=run_cycles / chip.clock_hz,
        epoch_latency_cycles=epoch_cycles,
        weight_transport_bits=run_counts.weight_transport_bits,
        sync_write_bits=run_counts.sync_write_bits,
        feedback_read_bits=run_counts.feedback_read_bits,
        macs=run_counts.total_macs,
    )
