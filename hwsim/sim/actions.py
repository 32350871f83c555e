"""Action counts: a rule's step and init as one row per component and action, each with the
energy hwsim charges for it, for tools that re-price counts with their own energy tables
(Timeloop/Accelergy, ZigZag). docs/simulator.md, "Action counts", documents the file.

A row is (chip, rule, batch_size, scope, layer, phase, component, tensor, action, count, bits,
energy_pj). Components are the chip's memory levels by name (actions ``read``, ``write``,
``transport``, and on a ``cim`` level ``mvm``, ``mvm_transposed``, ``convert``), the
``interconnect`` (``transfer``), the compute units ``compute.forward``, ``compute.error`` and
``compute.update`` (``mac_<format>``), ``compute.cim`` for the products arrays compute in place
(``mac_cim``, 0 pJ: their activations are priced on the level's rows) and the ``prng``
(``generate``). Each row is priced by the same function of :mod:`hwsim.sim.pricing` that
:func:`~hwsim.sim.pricing.price` sums, so a step's rows add up to its dynamic energy; the
memories' ``leakage`` rows (count: the step's cycles) make up the rest of its total.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

from hwsim.core.errors import InputError
from hwsim.core.files import write_atomic
from hwsim.sim.api import RuleResult, SimulationResult, StepResult
from hwsim.sim.chip import CIM_FORMAT, UNITS, Chip
from hwsim.sim.counting import Counts
from hwsim.sim.dataflow import INIT_PHASE, PHASES
from hwsim.sim.pricing import (
    access_energy_pj,
    generation_energy_pj,
    interconnect_energy_pj,
    leakage_energy_pj,
    mac_energy_pj,
)
from hwsim.sim.spatial import PHASE_UNIT

#: ``format`` and ``version`` of the JSON form (the CSV form has the same columns). The version
#: changes only when a column is removed, renamed or changes meaning; new columns are appended.
ACTIONS_FORMAT = "hwsim-actions"
ACTIONS_VERSION = 1
#: The columns, in file order.
COLUMNS = (
    "chip",
    "rule",
    "batch_size",
    "scope",
    "layer",
    "phase",
    "component",
    "tensor",
    "action",
    "count",
    "bits",
    "energy_pj",
)
#: File name endings :func:`write_actions` knows, and the form each writes.
EXTENSIONS = {".csv": "csv", ".json": "json"}
#: ``scope`` of a training step's rows and of a rule's one-time init's.
STEP_SCOPE = "step"
INIT_SCOPE = "init"
#: Components that are not memory levels.
INTERCONNECT = "interconnect"
PRNG = "prng"
CIM_COMPUTE = "compute.cim"
#: The compute unit whose MAC array runs each phase's MACs (docs/simulator.md, the phase table
#: of "Dataflow and counting model"); its component is ``compute.<unit>``.
PHASE_UNITS = {**PHASE_UNIT, "update": "update"}
#: The order of phases in the rows.
PHASE_ORDER = (*PHASES, INIT_PHASE)
#: The action of a memory level's leakage row (its count is cycles, not an event).
LEAKAGE = "leakage"


@dataclass(frozen=True)
class ActionRow:
    """One row of the action counts: :data:`COLUMNS`, in order."""

    chip: str
    rule: str
    batch_size: int
    #: ``step`` (one training step of ``batch_size`` samples) or ``init`` (the rule's one-time
    #: init)
    scope: str
    #: the workload's layer name; ``""`` where a row belongs to no one layer (leakage, init)
    layer: str
    #: ``forward``, ``backward``, ``gradient``, ``update``, ``init``; ``""`` for leakage
    phase: str
    component: str
    #: the tensor class moved (``weights``, ``errors``…); ``""`` for MACs and leakage
    tensor: str
    action: str
    #: accesses (memory), bits (interconnect), MACs, generated values, or cycles (leakage)
    count: int
    #: bits moved by the row's accesses or transfers; 0 where none move (MACs, PRNG, leakage,
    #: conversions)
    bits: int
    energy_pj: float

    def values(self) -> tuple[str | int | float, ...]:
        """The row's values in :data:`COLUMNS` order."""
        return astuple(self)


def counts_actions(
    counts: Counts,
    chip: Chip,
    *,
    rule: str = "",
    batch_size: int = 0,
    scope: str = STEP_SCOPE,
    layer: str = "",
) -> list[ActionRow]:
    """One row per entry of ``counts`` (leakage apart: :func:`leakage_actions`), priced on
    ``chip`` as :func:`hwsim.sim.pricing.price` prices it; in phase order (:data:`PHASE_ORDER`),
    then component order (:func:`component_order`), tensor and action."""
    head = (chip.name, rule, batch_size, scope, layer)
    rows = []
    for key, c in counts.accesses.items():
        level, tensor, phase, direction = key
        energy = access_energy_pj(chip, key, c)
        rows.append(ActionRow(*head, phase, level, tensor, direction, c.accesses, c.bits, energy))
    for (tensor, phase), bits in counts.interconnect_bits.items():
        energy = interconnect_energy_pj(chip, bits)
        rows.append(ActionRow(*head, phase, INTERCONNECT, tensor, "transfer", bits, bits, energy))
    for (phase, fmt), macs in counts.macs.items():
        unit = CIM_COMPUTE if fmt == CIM_FORMAT else f"compute.{PHASE_UNITS.get(phase, phase)}"
        energy = mac_energy_pj(chip, phase, fmt, macs)
        rows.append(ActionRow(*head, phase, unit, "", f"mac_{fmt}", macs, 0, energy))
    for phase, values in counts.generated_values.items():
        energy = generation_energy_pj(chip, values)
        # the PRNG regenerates feedback weights only (B, D or magnitudes)
        rows.append(
            ActionRow(*head, phase, PRNG, "feedback_weights", "generate", values, 0, energy)
        )
    components = component_order(chip)

    def order(row: ActionRow) -> tuple[int, int, str, str]:
        phase = PHASE_ORDER.index(row.phase) if row.phase in PHASE_ORDER else len(PHASE_ORDER)
        return phase, components.get(row.component, len(components)), row.tensor, row.action

    return sorted(rows, key=order)


def component_order(chip: Chip) -> dict[str, int]:
    """Component → its place in the rows: the memory levels innermost first, the interconnect,
    the compute units (``forward``, ``error``, ``update``), the arrays' products, the PRNG."""
    units = [f"compute.{unit}" for unit in UNITS]
    names = [*(m.name for m in chip.memories), INTERCONNECT, *units, CIM_COMPUTE, PRNG]
    return {name: k for k, name in enumerate(names)}


def leakage_actions(
    chip: Chip,
    latency_cycles: int,
    *,
    rule: str = "",
    batch_size: int = 0,
    scope: str = STEP_SCOPE,
) -> list[ActionRow]:
    """One ``leakage`` row per memory level (innermost first): count = ``latency_cycles``, the
    energy the level leaks meanwhile. None for a stretch of no cycles."""
    if latency_cycles <= 0:
        return []
    return [
        ActionRow(
            chip.name,
            rule,
            batch_size,
            scope,
            "",
            "",
            m.name,
            "",
            LEAKAGE,
            latency_cycles,
            0,
            leakage_energy_pj(chip, latency_cycles, m.name),
        )
        for m in chip.memories
    ]


def step_actions(
    step: StepResult, chip: Chip, rule: str = "", *, by_layer: bool = True
) -> list[ActionRow]:
    """A step's rows: per layer (layer order; they add up exactly to the step's counts) or, with
    ``by_layer=False``, of its aggregated counts (layer ``""``); then its leakage rows."""
    size = step.batch_size
    rows = []
    if by_layer and step.counts_by_layer:
        for layer, counts in step.counts_by_layer.items():
            rows += counts_actions(counts, chip, rule=rule, batch_size=size, layer=layer)
    else:
        rows += counts_actions(step.counts, chip, rule=rule, batch_size=size)
    return rows + leakage_actions(chip, step.latency_cycles, rule=rule, batch_size=size)


def rule_actions(result: RuleResult, chip: Chip, *, by_layer: bool = True) -> list[ActionRow]:
    """Every row of one simulated rule: a step of each distinct batch size (the nominal one
    first, :func:`step_actions`), then the one-time init (its counts are not split by layer;
    ``batch_size`` is the nominal step's, whose plan it follows)."""
    rows = []
    for step in result.steps_by_batch_size.values():
        rows += step_actions(step, chip, result.rule, by_layer=by_layer)
    rule, size, init = result.rule, result.step.batch_size, result.init
    rows += counts_actions(init.counts, chip, rule=rule, batch_size=size, scope=INIT_SCOPE)
    return rows + leakage_actions(
        chip, init.latency_cycles, rule=rule, batch_size=size, scope=INIT_SCOPE
    )


def simulation_actions(result: SimulationResult, chip: Chip) -> list[ActionRow]:
    """Every rule's rows (:func:`rule_actions`) of a :func:`hwsim.sim.api.simulate` result on
    ``chip`` (the chip it simulated)."""
    return [row for r in result.rules.values() for row in rule_actions(r, chip)]


def actions_csv(rows: Iterable[ActionRow]) -> str:
    """The CSV form: a header of :data:`COLUMNS`, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.values() for row in rows)
    return buffer.getvalue()


def actions_json(rows: Iterable[ActionRow]) -> str:
    """The JSON form: ``{"format", "version", "columns", "rows": [[value per column], …]}``."""
    document = {
        "format": ACTIONS_FORMAT,
        "version": ACTIONS_VERSION,
        "columns": list(COLUMNS),
        "rows": [list(row.values()) for row in rows],
    }
    try:
        return json.dumps(document, indent=1, allow_nan=False) + "\n"
    except ValueError:
        raise InputError(
            "an action's energy is not a finite number (an overflow); check the chip's numbers"
        ) from None


def actions_form(path: str | Path) -> str | None:
    """``csv`` or ``json`` by ``path``'s ending (:data:`EXTENSIONS`, any case), else None."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def write_actions(path: str | Path, rows: Iterable[ActionRow], what: str = "") -> None:
    """Write ``rows`` to ``path`` atomically, as CSV or JSON by its ending; another ending is an
    :class:`InputError` naming ``what`` (an option, e.g. ``--actions``) and ``path``."""
    form = actions_form(path)
    if form is None:
        raise InputError(unknown_ending(path, what))
    write_atomic(path, actions_csv(rows) if form == "csv" else actions_json(rows))


def unknown_ending(path: str | Path, what: str = "") -> str:
    """The message for an action-count file name whose ending is neither .csv nor .json."""
    name = f"{what} {path}" if what else str(path)
    return f"{name}: expected a file name ending in .csv (CSV) or .json (JSON)"
