"""Chip configs: the versioned YAML schema, its validation, and the typed ``Chip`` it builds.

Validation runs before anything else and reports every problem at once, one line each, as
``FILE:LINE: key.path: what is wrong``. The schema is documented key by key in
``docs/simulator.md``. A file may build on another (``extends:``) and ``--set key.path=value``
overrides apply on top (:mod:`hwsim.sim.chip_document`); a problem then names the file and line
its value came from, or the ``--set`` option that gave it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hwsim.core.errors import InputError
from hwsim.core.formats import FORMATS, parse_format, unit_for
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.core.yaml_lines import KeyPath
from hwsim.sim.chip_document import (
    Origins,
    ResolvedDocument,
    apply_overrides,
    resolve_extends,
)
from hwsim.sim.chip_problems import Problems, kind_of
from hwsim.sim.chip_training import parse_placement, parse_training
from hwsim.sim.cim import CimArrays
from hwsim.sim.memories import MemoryLevel, parse_memories
from hwsim.sim.memory_model import CACTI45_SOURCE, MAC_AREA_SOURCE, mac_lane_area_um2

#: The chip's public entry: the types a :class:`Chip` is made of stay importable from here
#: (``from hwsim.sim.chip import Chip, MemoryLevel``), wherever they are defined.
__all__ = [
    "CIM_FORMAT",
    "SCHEMA_VERSION",
    "UNITS",
    "AreaPart",
    "Chip",
    "CimArrays",
    "Interconnect",
    "MemoryLevel",
    "SourcedNumber",
    "chip_from_dict",
    "chip_yaml",
    "load_chip",
    "resolve_chip",
    "shipped_chip",
]

SCHEMA_VERSION = 1
#: The "number format" of MACs an array computes in place: priced in its activations, not as
#: digital MACs, and taking no time on a unit's MAC array.
CIM_FORMAT = "cim"
#: The compute units, each with its own MAC array (``compute.<unit>.macs_per_cycle``).
UNITS = ("forward", "error", "update")


@dataclass(frozen=True)
class Interconnect:
    """The on-chip link between the forward side and the error side (transport, sync)."""

    bandwidth_bits_per_cycle: int
    latency_cycles: int
    energy_per_bit_pj: float
    source: str | None = None


@dataclass(frozen=True)
class SourcedNumber:
    """A number of a chip file and the ``source:`` note that covers it.

    ``at`` is the dotted key path of the mapping whose ``source:`` it is: the number's own
    mapping or, when that has none, the nearest enclosing one (``""`` for the document).
    """

    value: int | float
    source: str
    at: str


@dataclass(frozen=True)
class AreaPart:
    """One part of a chip's silicon: a memory level or the MAC arrays (``what``: ``memory`` or
    ``compute``), its area in mm² (None: unknown) and where that comes from; ``derived`` when a
    model computed it (docs/simulator.md, "Size and area")."""

    name: str
    what: str
    mm2: float | None
    source: str
    derived: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"name", "what", "mm2", "source", "derived"}``."""
        return {
            "name": self.name,
            "what": self.what,
            "mm2": self.mm2,
            "source": self.source,
            "derived": self.derived,
        }


@dataclass(frozen=True)
class MacArray:
    """A compute unit's MAC array (``compute.<unit>.array``): ``rows`` × ``cols`` processing
    elements fed from the innermost memory level, partial sums ``accumulator_bits`` wide
    (docs/simulator.md, "The MAC array")."""

    rows: int
    cols: int
    accumulator_bits: int


@dataclass(frozen=True)
class Chip:
    """A validated chip config. ``memories`` run from innermost to outermost.

    ``sources`` maps the dotted key path of every number that a ``source:`` note covers
    (``memories.rf.read_energy_pj``, ``compute.mac_energy_pj.int8``) to that number and its
    note, in file order; numbers no note covers are absent.

    ``mac_energy_pj`` maps each number format the chip's MAC units support (``int8``,
    ``fp32``…, :mod:`hwsim.core.formats`) to the energy of one MAC in it, narrowest first.
    """

    name: str
    clock_hz: float
    memories: tuple[MemoryLevel, ...]
    interconnect: Interconnect
    macs_per_cycle: dict[str, int]
    mac_energy_pj: dict[str, float]
    placement: dict[str, str]
    bp_weight_access: str
    feedback_storage: str
    prng_energy_per_value_pj: float
    prng_values_per_cycle: int
    samples_per_weight_fetch: int | None
    gradient_bits: int
    optimizer_state_bits: int
    #: number formats of stored ΔW and optimizer state (``training.gradient_format`` …)
    gradient_format: str
    optimizer_state_format: str
    #: Tensor classes allocated first, in this order, whatever their traffic (``training.pinned``).
    pinned: tuple[str, ...] = ()
    #: unit → its MAC array, where the chip gives one (``compute.<unit>.array``); a unit
    #: without one is an ideal vector of ``macs_per_cycle`` lanes fed for free
    arrays: dict[str, MacArray] = field(default_factory=dict)
    #: ``auto`` (cheapest per layer and phase), ``batch_outer`` or ``weight_outer``.
    loop_order: str = "auto"
    #: what the mapper minimizes: ``energy``, ``latency`` or ``edp`` (their product)
    objective: str = "energy"
    #: ``accumulate`` (ΔW over the batch, one update per step) or ``fused`` (per sample, no ΔW).
    update: str = "accumulate"
    #: BP mirror mode: the memory level every synchronization passes through (None: direct).
    mirror_sync_via: str | None = None
    #: ``full`` (a digital mirror rewritten whole) or ``changed`` (only the changed weights).
    mirror_sync: str = "full"
    description: str = ""
    version: int = SCHEMA_VERSION
    path: str | None = field(default=None, compare=False)
    sources: dict[str, SourcedNumber] = field(default_factory=dict)
    #: dotted key path → line in the chip file (for errors found after validation); for a key
    #: that came from another file (``extends:``), its line in that file
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    #: dotted key path → where its value came from, when that is not :attr:`path`: the file it
    #: extends (its line is in :attr:`lines`) or a ``--set key.path`` override (no line)
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: the chip document as validated: ``extends:`` merged, ``--set`` overrides applied, in key
    #: order (JSON- and YAML-dumpable; :func:`chip_yaml` writes it out as an effective chip file)
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: silicon area of the MAC arrays, mm² (``compute.area_mm2``, or derived; None: unknown)
    compute_area_mm2: float | None = None
    #: where a derived or unknown MAC area comes from; None when ``compute.area_mm2`` is given
    compute_area_source: str | None = None

    def where(self, key: str) -> str:
        """``FILE:LINE: key`` for an error about ``key`` (the nearest key given in the file that
        gave it; ``--set key.path: key`` when an override gave it)."""
        probe = key
        while probe and probe not in self.lines and probe not in self.origins:
            probe = probe.rpartition(".")[0]
        source = self.origins.get(probe, self.path or self.name)
        line = f":{self.lines[probe]}" if probe in self.lines else ""
        return f"{source}{line}: {key}"

    def areas(self) -> list[AreaPart]:
        """The chip's silicon, part by part: every memory level (innermost first; a DRAM is
        off chip, 0) and then the MAC arrays, each with its area and where it comes from."""
        parts = [
            self._area_part(m.name, "memory", m.area_mm2, m.area_source, f"memories.{m.name}")
            for m in self.memories
        ]
        parts.append(
            self._area_part(
                "MACs", "compute", self.compute_area_mm2, self.compute_area_source, "compute"
            )
        )
        return parts

    def _area_part(
        self, name: str, what: str, mm2: float | None, source: str | None, at: str
    ) -> AreaPart:
        if source is not None:  # derived, off chip or unknown
            return AreaPart(name, what, mm2, source, derived=mm2 is not None and mm2 > 0)
        sourced = self.sources.get(f"{at}.area_mm2")
        note = sourced.source if sourced is not None else "given (area_mm2), no source: note"
        return AreaPart(name, what, mm2, note, derived=False)

    @property
    def area_mm2(self) -> float:
        """Total silicon on the chip, mm²: every part whose area is known (:meth:`areas`)."""
        return sum(part.mm2 for part in self.areas() if part.mm2 is not None)

    def derived_numbers(self) -> dict[str, SourcedNumber]:
        """The numbers no chip file gives but a model derived, by key path, with the model's
        source as their note (``at``: the key that asked for them, or the mapping they belong
        to): a sized level's energies, latency, leakage and area, the area of SRAM levels and
        of the MAC arrays."""
        found: dict[str, SourcedNumber] = {}
        for m in self.memories:
            at = f"memories.{m.name}"
            if m.model is not None:
                for key in ("read_energy_pj", "write_energy_pj", "latency_cycles", "leakage_mw"):
                    value = getattr(m, key)
                    found[f"{at}.{key}"] = SourcedNumber(value, CACTI45_SOURCE, f"{at}.model")
            if m.area_source is not None and m.area_mm2 is not None and m.kind != "dram":
                found[f"{at}.area_mm2"] = SourcedNumber(m.area_mm2, m.area_source, at)
        if self.compute_area_source is not None and self.compute_area_mm2 is not None:
            found["compute.area_mm2"] = SourcedNumber(
                self.compute_area_mm2, self.compute_area_source, "compute"
            )
        return found

    @functools.cached_property
    def _levels(self) -> dict[str, MemoryLevel]:
        return {level.name: level for level in self.memories}

    def memory(self, name: str) -> MemoryLevel:
        """The memory level called ``name`` (KeyError if there is none)."""
        return self._levels[name]

    def spill_order(self, tensor: str) -> list[MemoryLevel]:
        """Levels a tensor may live in: its placed level, then every level outward of it.

        ROM only ever holds feedback weights (nothing else is read-only), so other tensors skip it.
        A compute-in-memory level holds only what placement puts there: a tensor that does not
        fit its arrays spills to the digital levels outward, never into another level's arrays.
        """
        placed = self.placement[tensor]
        start = [m.name for m in self.memories].index(placed)
        return [
            m for m in self.memories[start:] if m.name == placed or m.kind not in ("rom", "cim")
        ]

    @property
    def has_cim(self) -> bool:
        """Whether any level computes in memory (``kind: cim``)."""
        return any(m.cim is not None for m in self.memories)

    def mac_unit_for(self, mac_format: str, what: str = "") -> str:
        """The supported format that runs MACs of ``mac_format``: itself, else the narrowest
        supported format of the same family that holds it (``int8`` on an ``int16`` unit).

        Raises :class:`InputError` naming the chip file, the key, the format needed (for
        ``what``, e.g. ``"backward MACs of layer 'layers.1'"``) and the formats supported.
        """
        unit = unit_for(mac_format, tuple(self.mac_energy_pj))
        if unit is None:
            for_what = f" for the {what}" if what else ""
            raise InputError(
                f"{self.where('compute.mac_energy_pj')}: no MAC unit runs "
                f"{mac_format}{for_what} (supported: {', '.join(self.mac_energy_pj)}); add an "
                f"entry {mac_format}: <pJ per MAC> (or a wider format of the same family)"
            )
        return unit

    def mac_energy_for(self, mac_format: str, what: str = "") -> float:
        """Energy of one MAC in ``mac_format``, on the unit :meth:`mac_unit_for` picks; 0 for
        a product an array computes in place (:data:`CIM_FORMAT`: its activations price it)."""
        if mac_format == CIM_FORMAT:
            return 0.0
        return self.mac_energy_pj[self.mac_unit_for(mac_format, what)]


# ---------------------------------------------------------------------------------------------
# loading


def shipped_chip(name: str | Path) -> Path:
    """Path of the shipped chip called ``name`` (``edge_sram`` or ``edge_sram.yaml``)."""
    text = str(name)
    return CHIPS_DIR / (text if text.endswith(".yaml") else f"{text}.yaml")


def resolve_chip(name: str | Path, base: Path | None = None) -> Path:
    """A chip file path: as given, relative to ``base``, or a shipped chip by name
    (``edge_sram`` → ``configs/chips/edge_sram.yaml``)."""
    candidates = [Path(name)]
    if base is not None:
        candidates.append(base / name)
    candidates += [CHIPS_DIR / str(name), shipped_chip(name)]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    shipped = ", ".join(shipped_chip_names())
    raise InputError(f"chip file {name!s} not found (shipped chips: {shipped})")


def load_chip(path: str | Path, overrides: Sequence[str] = ()) -> Chip:
    """Read and validate a chip YAML file; raise :class:`InputError` listing every problem.

    A bare name that is no file here (``dram_accel``) means the shipped chip of that name. The
    file's ``extends:`` chain is merged first, then each ``key.path=value`` of ``overrides`` is
    applied in order (:mod:`hwsim.sim.chip_document`), then the result is validated: a problem
    names the file and line its value came from, or ``--set key.path``. The result's
    :attr:`Chip.document` is the merged, overridden document.
    """
    path = Path(path)
    if not path.exists() and path.parent == Path("."):
        if shipped_chip(path).is_file():
            path = shipped_chip(path)
        elif path.suffix not in (".yaml", ".yml"):
            raise InputError(
                f"{path}: cannot read file (no such file, and no shipped chip of that name: "
                f"{', '.join(shipped_chip_names())})"
            )
    resolved = resolve_extends(path)
    document, origins = apply_overrides(resolved.document, resolved.origins, overrides)
    problems = list(resolved.problems) + _inherited_name(resolved, origins, path)
    return chip_from_dict(document, path, origins=origins, problems=problems)


def _inherited_name(resolved: ResolvedDocument, origins: Origins, path: Path) -> list[str]:
    """The problem of a chip that extends another without a ``name`` of its own (it would share
    its parent's in reports and comparisons): ``--set name=…`` gives one too."""
    origin = origins.get(("name",))
    if resolved.extends is None or origin is None:
        return []  # no name at all: validation reports the missing key
    if origin.source == str(path) or origin.line is None:
        return []
    return [
        f"{resolved.extends_at}: name: a chip that extends another must give its own name "
        f"(else it shares {resolved.document.get('name')!r} with {resolved.extends!r} in "
        "reports); add name: <new name>"
    ]


def chip_yaml(chip: Chip) -> str:
    """The effective chip file of ``chip``: its :attr:`Chip.document` (``extends:`` merged,
    overrides applied) as YAML, keys in document order. It loads back to an equal chip."""
    return yaml.safe_dump(
        chip.document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )


def chip_from_dict(
    data: Any,
    path: str | Path = "<chip>",
    lines: dict[KeyPath, int] | None = None,
    *,
    origins: Origins | None = None,
    problems: Sequence[str] = (),
) -> Chip:
    """Validate an already-parsed chip document; ``lines`` maps key paths to line numbers in
    ``path``. ``origins`` replaces ``lines`` for a document merged from several files or
    overridden (:func:`load_chip`); ``problems`` are reported with validation's own."""
    p = Problems(Path(path), lines or {}, origins)
    p.messages.extend(problems)
    top = p.mapping(
        data,
        (),
        ("version", "name", "clock_hz", "memories", "interconnect", "compute", "placement"),
        ("description", "training", "extends"),
    )
    if "version" in top and top["version"] != SCHEMA_VERSION:
        p.add(("version",), f"unsupported chip schema version {top['version']!r} (this is 1)")
        raise InputError("\n".join(p.messages))
    if "extends" in top:
        p.add(("extends",), "extends: is resolved when a chip file is loaded (load_chip)")
    name = top.get("name", "chip")
    if "name" in top and not isinstance(name, str):
        p.add(("name",), f"must be a string, got {kind_of(name)}")
    description = top.get("description", "")
    clock_hz = p.number(top["clock_hz"], ("clock_hz",), positive=True) if "clock_hz" in top else 1.0
    memories = parse_memories(p, top.get("memories"), clock_hz) if "memories" in top else ()
    interconnect = _interconnect(p, top.get("interconnect")) if "interconnect" in top else None
    macs_per_cycle, mac_energy, mac_area, arrays = (
        _compute(p, top["compute"]) if "compute" in top else ({}, {}, None, {})
    )
    training = parse_training(p, top.get("training", {}))
    placement = (
        parse_placement(p, top["placement"], memories, training) if "placement" in top else {}
    )
    if p.messages:
        raise InputError("\n".join(p.messages))
    assert interconnect is not None
    return Chip(
        name=name,
        description=str(description or ""),
        clock_hz=clock_hz,
        memories=memories,
        interconnect=interconnect,
        macs_per_cycle=macs_per_cycle,
        mac_energy_pj=mac_energy,
        arrays=arrays,
        placement=placement,
        path=str(path),
        sources=_sources(top),
        lines={".".join(map(str, k)): o.line for k, o in p.origins.items() if k and o.line},
        origins={
            ".".join(map(str, k)): o.source for k, o in p.origins.items() if o.source != str(path)
        },
        document=copy.deepcopy(top),
        **_compute_area(macs_per_cycle, mac_energy, mac_area),
        **training,
    )


def _sources(document: dict[str, Any]) -> dict[str, SourcedNumber]:
    """Every number of a validated document that a ``source:`` note covers, by key path.

    A mapping's ``source:`` covers its numbers and those of nested mappings without their own
    note. The schema ``version`` is no sourced quantity and is left out.
    """
    found: dict[str, SourcedNumber] = {}

    def walk(mapping: dict[Any, Any], path: tuple[str, ...], note: tuple[str, str] | None) -> None:
        own = mapping.get("source")
        if isinstance(own, str):
            note = (own, ".".join(path))
        for key, value in mapping.items():
            if key == "source" or (not path and key == "version"):
                continue
            child = (*path, str(key))
            if isinstance(value, dict):
                walk(value, child, note)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and note:
                found[".".join(child)] = SourcedNumber(value=value, source=note[0], at=note[1])

    walk(document, (), None)
    return found


def _interconnect(p: Problems, value: Any) -> Interconnect:
    at = ("interconnect",)
    m = p.mapping(value, at, ("bandwidth_bits_per_cycle", "energy_per_bit_pj"), ("latency_cycles",))
    return Interconnect(
        bandwidth_bits_per_cycle=p.integer(
            m.get("bandwidth_bits_per_cycle", 1), (*at, "bandwidth_bits_per_cycle")
        ),
        latency_cycles=p.integer(m.get("latency_cycles", 1), (*at, "latency_cycles"), 0),
        energy_per_bit_pj=p.number(m.get("energy_per_bit_pj", 0.0), (*at, "energy_per_bit_pj")),
        source=m.get("source"),
    )


def _compute(
    p: Problems, value: Any
) -> tuple[dict[str, int], dict[str, float], float | None, dict[str, MacArray]]:
    """MACs per cycle of each unit, pJ per MAC by format, ``area_mm2`` if given, and each
    unit's MAC array where it gives one."""
    at = ("compute",)
    m = p.mapping(value, at, (*UNITS, "mac_energy_pj"), ("area_mm2",))
    area = p.number(m["area_mm2"], (*at, "area_mm2")) if "area_mm2" in m else None
    macs = {}
    arrays = {}
    for unit in UNITS:
        if unit in m:
            u = p.mapping(m[unit], (*at, unit), ("macs_per_cycle",), ("array",))
            if "macs_per_cycle" in u:
                macs[unit] = p.integer(u["macs_per_cycle"], (*at, unit, "macs_per_cycle"))
            if "array" in u:
                array = _array(p, u["array"], (*at, unit, "array"), macs.get(unit))
                if array is not None:
                    arrays[unit] = array
    table: dict[str, float] = {}
    energies = m.get("mac_energy_pj")
    if "mac_energy_pj" in m:
        if not isinstance(energies, dict) or not energies:
            p.add(
                (*at, "mac_energy_pj"),
                "must map number format → pJ per MAC, e.g. {int8: 0.23, fp32: 4.6}",
            )
        else:
            for key, energy in energies.items():
                if key == "source":
                    continue
                path = (*at, "mac_energy_pj", key)
                name = _mac_format(p, key, path)
                if name is None:
                    continue
                if name in table:
                    p.add(path, f"{name} is given twice (an integer key b means int<b>)")
                table[name] = p.number(energy, path)
    return macs, dict(sorted(table.items(), key=lambda kv: _format_rank(kv[0]))), area, arrays


def _array(p: Problems, value: Any, at: KeyPath, lanes: int | None) -> MacArray | None:
    """``compute.<unit>.array``: ``{rows, cols, accumulator_bits}``, rows × cols = the unit's
    ``macs_per_cycle`` (one MAC per processing element and cycle)."""
    a = p.mapping(value, at, ("rows", "cols", "accumulator_bits"), ())
    if not {"rows", "cols", "accumulator_bits"} <= set(a):
        return None
    rows = p.integer(a["rows"], (*at, "rows"))
    cols = p.integer(a["cols"], (*at, "cols"))
    acc = p.integer(a["accumulator_bits"], (*at, "accumulator_bits"))
    if lanes is not None and rows * cols != lanes:
        p.add(
            at,
            f"{rows} × {cols} = {rows * cols} processing elements, but macs_per_cycle is "
            f"{lanes}: an array does one MAC per element and cycle",
        )
        return None
    return MacArray(rows, cols, acc)


def _compute_area(
    macs_per_cycle: dict[str, int], mac_energy: dict[str, float], given: float | None
) -> dict[str, Any]:
    """``compute_area_mm2`` and its source: as given, else every unit's lanes × one lane's
    area (:func:`hwsim.sim.memory_model.mac_lane_area_um2`)."""
    if given is not None:
        return {"compute_area_mm2": given, "compute_area_source": None}
    lane = mac_lane_area_um2(mac_energy)
    if lane is None:
        return {
            "compute_area_mm2": None,
            "compute_area_source": "not given: no tabulated MAC area runs every supported "
            f"format ({', '.join(mac_energy)}); give compute.area_mm2 and its source",
        }
    lanes = sum(macs_per_cycle.values())
    return {"compute_area_mm2": lanes * lane * 1e-6, "compute_area_source": MAC_AREA_SOURCE}


def _mac_format(p: Problems, key: Any, path: KeyPath) -> str | None:
    """A ``compute.mac_energy_pj`` key as a format name; a bare integer ``b`` (schema 1's
    keys, still read) means ``int<b>``."""
    if isinstance(key, int) and not isinstance(key, bool):
        key = f"int{key}"
    try:
        return parse_format(key, ".".join(map(str, path))).name
    except InputError:
        p.add(
            path,
            f"unknown number format {key!r} (expected {', '.join(FORMATS)}, int<N>, or a bare "
            "bit width b meaning int<b>)",
        )
        return None


def _format_rank(name: str) -> tuple[int, int]:
    fmt = parse_format(name)
    return (fmt.bits, FORMATS.index(name) if name in FORMATS else -1)
