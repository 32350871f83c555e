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
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from hwsim.core.errors import InputError
from hwsim.core.formats import FORMATS, int_format, parse_format, unit_for
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.core.yaml_lines import KeyPath
from hwsim.sim.chip_document import (
    Origin,
    Origins,
    ResolvedDocument,
    apply_overrides,
    resolve_extends,
)

SCHEMA_VERSION = 1
#: Where the shipped chips live; ``resolve_chip`` finds them by bare name.
MEMORY_KINDS = ("register_file", "sram", "global_buffer", "rom", "dram", "cim")
#: Cell technologies a level may name (``technology:``); the default follows its kind.
TECHNOLOGIES = ("sram", "dram", "rom", "rram", "pcm", "fefet", "mram")
#: Technologies whose cells keep their state without power and wear out with writes.
NON_VOLATILE = ("rram", "pcm", "fefet", "mram")
_DEFAULT_TECHNOLOGY = {
    "register_file": "sram",
    "sram": "sram",
    "global_buffer": "sram",
    "rom": "rom",
    "dram": "dram",
}
#: The "number format" of MACs an array computes in place: priced in its activations, not as
#: digital MACs, and taking no time on a unit's MAC array.
CIM_FORMAT = "cim"
#: Tensor classes a compute-in-memory level may hold: the weight-like ones an MVM multiplies.
CIM_TENSORS = ("weights", "weight_mirror", "feedback_weights")
#: Tensor classes a chip places. ``weight_mirror`` is BP's copy of W in ``mirror`` mode.
TENSORS = (
    "weights",
    "feedback_weights",
    "weight_mirror",
    "activations",
    "errors",
    "gradients",
    "optimizer_state",
)
UNITS = ("forward", "error", "update")
BP_WEIGHT_ACCESS = ("transport", "mirror", "transpose")
FEEDBACK_STORAGE = ("sram", "rom", "dram", "prng", "cim")
#: ``training.loop_order``: let the planner pick per layer and phase, or force one order.
LOOP_ORDERS = ("auto", "batch_outer", "weight_outer")
#: ``training.objective``: what the mapper minimizes (``hwsim.sim.mapper.OBJECTIVES``).
OBJECTIVES = ("energy", "latency", "edp")
#: ``training.update``: ΔW accumulated over the batch, or each sample's update applied at once.
UPDATE_MODES = ("accumulate", "fused")
#: ``training.mirror_sync``: a digital mirror rewritten whole after every update, or sent only
#: the weights whose stored level changed, with their indices (whichever is fewer bits).
MIRROR_SYNC = ("full", "changed")
#: Which memory kinds each stored feedback option may name.
_STORAGE_KINDS = {
    "sram": ("register_file", "sram", "global_buffer"),
    "rom": ("rom",),
    "dram": ("dram",),
    "cim": ("cim",),
}


@dataclass(frozen=True)
class CimArrays:
    """The crossbar arrays of a compute-in-memory level (``kind: cim``, docs/simulator.md).

    A weight of ``b`` bits takes ``⌈b / bits_per_cell⌉`` cells in adjacent columns. A layer maps
    its inputs (plus one bias row) on rows and its outputs × cells on columns, tiled over whole
    arrays; feedback weights and BP's mirror are programmed pre-transposed, so the error pass
    on them is an ordinary activation. One activation drives every row of one array with one
    input slice of ``dac_bits`` bits and converts every column (a transposed activation drives
    the columns and converts every row).
    """

    arrays: int
    rows: int
    columns: int
    bits_per_cell: int
    mvm_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    input_bits: int
    dac_bits: int
    mvm_latency_cycles: int
    write_pulses: float
    verify_energy_pj: float
    write_latency_cycles: int
    write_parallel_cells: int
    transpose_read: bool
    transpose_mvm_energy_pj: float

    @property
    def cells(self) -> int:
        """Cells of the whole level."""
        return self.arrays * self.rows * self.columns

    def cells_per_weight(self, bits: int) -> int:
        """Cells one weight of ``bits`` bits takes (bit-sliced over adjacent columns)."""
        return math.ceil(bits / self.bits_per_cell)

    def tiles(self, rows: int, columns: int) -> int:
        """Whole arrays a matrix of ``rows`` × ``columns`` cells takes."""
        return math.ceil(rows / self.rows) * math.ceil(columns / self.columns)

    def slices(self, operand_bits: int) -> int:
        """Activations per input vector: its bits (at most ``input_bits``) in slices of
        ``dac_bits``."""
        return math.ceil(min(operand_bits, self.input_bits) / self.dac_bits)

    def activation_energy_pj(self, transposed: bool = False) -> float:
        """One activation of one array: the array itself, one conversion per sensed line and
        one drive per driven line."""
        if transposed:
            return (
                self.transpose_mvm_energy_pj
                + self.rows * self.adc_energy_pj
                + self.columns * self.dac_energy_pj
            )
        return (
            self.mvm_energy_pj + self.columns * self.adc_energy_pj + self.rows * self.dac_energy_pj
        )

    def program_energy_pj(self, write_energy_pj: float) -> float:
        """Programming one cell: ``write_pulses`` pulses, each followed by a verify read."""
        return self.write_pulses * (write_energy_pj + self.verify_energy_pj)

    def program_cycles(self, cells: int) -> int:
        """Cycles to program ``cells`` cells, ``write_parallel_cells`` at a time."""
        rounds = math.ceil(cells / self.write_parallel_cells)
        return math.ceil(rounds * self.write_pulses) * self.write_latency_cycles


@dataclass(frozen=True)
class MemoryLevel:
    """One memory of the hierarchy. Energies are per access; an access moves one burst."""

    name: str
    kind: str
    size_bytes: int
    word_bits: int
    banks: int
    ports: int
    burst_words: int
    read_energy_pj: float
    write_energy_pj: float
    bandwidth_bits_per_cycle: int
    latency_cycles: int
    leakage_mw: float
    source: str | None = None
    #: the cells' technology (``sram``, ``dram``, ``rom``, ``rram``, ``pcm``, ``fefet``, ``mram``)
    technology: str = "sram"
    #: program operations a cell survives (None: not given; wear is reported where it is)
    endurance_cycles: float | None = None
    #: how long a cell keeps its value, in seconds (None: not given)
    retention_s: float | None = None
    #: the arrays of a compute-in-memory level (``kind: cim``), None for every other kind
    cim: CimArrays | None = None

    @property
    def size_bits(self) -> int:
        """Capacity in bits (a compute-in-memory level: every cell's bits)."""
        if self.cim is not None:
            return self.cim.cells * self.cim.bits_per_cell
        return self.size_bytes * 8

    @property
    def non_volatile(self) -> bool:
        """Whether the cells keep their state without power (and wear with writes)."""
        return self.technology in NON_VOLATILE

    def words_and_accesses(self, bits: int) -> tuple[int, int]:
        """Words and accesses (bursts) of one fetch of ``bits``: ⌈bits / word⌉ words in
        ⌈words / burst⌉ accesses."""
        words = math.ceil(bits / self.word_bits)
        return words, math.ceil(words / self.burst_words)

    def access_energy_pj(self, direction: str) -> float:
        """Energy of one access: the write energy for writes, the read energy otherwise (reads
        and BP's transport reads).

        On a compute-in-memory level an access is one array activation (``mvm``,
        ``mvm_transposed``), one conversion beyond those an activation includes (``convert``:
        a transposed read of weights spread over several cells), one row read out (``read``,
        ``transport``) or one cell programmed (``write``: its pulses and verify reads).
        """
        if self.cim is not None:
            if direction == "mvm":
                return self.cim.activation_energy_pj()
            if direction == "mvm_transposed":
                return self.cim.activation_energy_pj(transposed=True)
            if direction == "convert":
                return self.cim.adc_energy_pj
            if direction == "write":
                return self.cim.program_energy_pj(self.write_energy_pj)
        return self.write_energy_pj if direction == "write" else self.read_energy_pj


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

    def where(self, key: str) -> str:
        """``FILE:LINE: key`` for an error about ``key`` (the nearest key given in the file that
        gave it; ``--set key.path: key`` when an override gave it)."""
        probe = key
        while probe and probe not in self.lines and probe not in self.origins:
            probe = probe.rpartition(".")[0]
        source = self.origins.get(probe, self.path or self.name)
        line = f":{self.lines[probe]}" if probe in self.lines else ""
        return f"{source}{line}: {key}"

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
# validation


class _Problems:
    """Collects one message per problem, each naming file, line and key path.

    ``origins`` (key path → :class:`Origin`) says where each value came from when the document
    was merged from several files or overridden (``--set``); without it every key is in
    ``file``, at its line in ``lines``. A problem names the nearest key path that has a place.
    """

    def __init__(self, file: Path, lines: dict[KeyPath, int], origins: Origins | None = None):
        self.file = file
        self.origins: Origins = (
            origins
            if origins is not None
            else {k: Origin(str(file), line) for k, line in lines.items()}
        )
        self.messages: list[str] = []

    def add(self, path: KeyPath, message: str) -> None:
        probe = path
        while probe not in self.origins and probe:
            probe = probe[:-1]
        origin = self.origins.get(probe, Origin(str(self.file), 1))
        dotted = ".".join(str(p) for p in path) or "<document>"
        self.messages.append(f"{origin}: {dotted}: {message}")

    def mapping(
        self, value: Any, path: KeyPath, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> dict[str, Any]:
        """Check a mapping's keys; return it (or an empty dict when it isn't one)."""
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping, got {_kind(value)}")
            return {}
        allowed = set(required) | set(optional) | {"source"}
        for key in value:
            if key not in allowed:
                self.add((*path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                self.add((*path, key), "missing required key")
        source = value.get("source")
        if source is not None and not isinstance(source, str):
            self.add((*path, "source"), f"must be a string, got {_kind(source)}")
        return value

    def integer(self, value: Any, path: KeyPath, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {_kind(value)} {value!r}")
            return minimum
        if value < minimum:
            word = "positive" if minimum == 1 else f"at least {minimum}"
            self.add(path, f"must be {word}, got {value}")
            return minimum
        return value

    def number(self, value: Any, path: KeyPath, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"must be a number, got {_kind(value)} {value!r}")
            return 1.0
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.add(path, f"must be {'positive' if positive else 'zero or more'}, got {value}")
            return 1.0
        return float(value)

    def choice(self, value: Any, path: KeyPath, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.add(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return choices[0]
        return cast(str, value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


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
    p = _Problems(Path(path), lines or {}, origins)
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
        p.add(("name",), f"must be a string, got {_kind(name)}")
    description = top.get("description", "")
    clock_hz = p.number(top["clock_hz"], ("clock_hz",), positive=True) if "clock_hz" in top else 1.0
    memories = _memories(p, top.get("memories")) if "memories" in top else ()
    interconnect = _interconnect(p, top.get("interconnect")) if "interconnect" in top else None
    macs_per_cycle, mac_energy = _compute(p, top["compute"]) if "compute" in top else ({}, {})
    training = _training(p, top.get("training", {}))
    placement = _placement(p, top["placement"], memories, training) if "placement" in top else {}
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
        placement=placement,
        path=str(path),
        sources=_sources(top),
        lines={".".join(map(str, k)): o.line for k, o in p.origins.items() if k and o.line},
        origins={
            ".".join(map(str, k)): o.source for k, o in p.origins.items() if o.source != str(path)
        },
        document=copy.deepcopy(top),
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


_MEMORY_REQUIRED = ("kind", "size_bytes", "word_bits", "read_energy_pj")
_MEMORY_OPTIONAL = (
    "write_energy_pj",
    "banks",
    "ports",
    "burst_words",
    "bandwidth_bits_per_cycle",
    "latency_cycles",
    "leakage_mw",
    "technology",
    "endurance_cycles",
    "retention_s",
)
_CIM_REQUIRED = (
    "kind",
    "technology",
    "arrays",
    "rows",
    "columns",
    "bits_per_cell",
    "mvm_energy_pj",
    "adc_energy_pj",
    "read_energy_pj",
    "write_energy_pj",
    "mvm_latency_cycles",
)
_CIM_OPTIONAL = (
    "dac_energy_pj",
    "input_bits",
    "dac_bits",
    "write_pulses",
    "verify_energy_pj",
    "write_latency_cycles",
    "write_parallel_cells",
    "transpose_read",
    "transpose_mvm_energy_pj",
    "ports",
    "latency_cycles",
    "leakage_mw",
    "endurance_cycles",
    "retention_s",
)
#: Keys a compute-in-memory level derives from its arrays (giving them is an error).
_CIM_DERIVED = ("size_bytes", "word_bits", "banks", "burst_words", "bandwidth_bits_per_cycle")


def _memories(p: _Problems, value: Any) -> tuple[MemoryLevel, ...]:
    if not isinstance(value, dict) or not value:
        p.add(("memories",), "must be a non-empty mapping of memory name → level")
        return ()
    levels = []
    for name, spec in value.items():
        at = ("memories", name)
        if isinstance(spec, dict) and spec.get("kind") == "cim":
            levels.append(_cim_level(p, str(name), spec))
            continue
        m = p.mapping(spec, at, _MEMORY_REQUIRED, _MEMORY_OPTIONAL)
        if not m:
            continue
        kind = p.choice(m.get("kind"), (*at, "kind"), MEMORY_KINDS) if "kind" in m else "sram"
        word_bits = p.integer(m.get("word_bits", 1), (*at, "word_bits"))
        banks = p.integer(m.get("banks", 1), (*at, "banks"))
        if kind == "rom" and "write_energy_pj" in m:
            p.add((*at, "write_energy_pj"), "a ROM is never written: remove this key")
        if kind != "rom" and "write_energy_pj" not in m:
            p.add((*at, "write_energy_pj"), "missing required key (only a ROM has none)")
        levels.append(
            MemoryLevel(
                name=str(name),
                kind=kind,
                size_bytes=p.integer(m.get("size_bytes", 1), (*at, "size_bytes")),
                word_bits=word_bits,
                banks=banks,
                ports=p.integer(m.get("ports", 1), (*at, "ports")),
                burst_words=p.integer(m.get("burst_words", 1), (*at, "burst_words")),
                read_energy_pj=p.number(m.get("read_energy_pj", 0.0), (*at, "read_energy_pj")),
                write_energy_pj=p.number(m.get("write_energy_pj", 0.0), (*at, "write_energy_pj")),
                bandwidth_bits_per_cycle=p.integer(
                    m.get("bandwidth_bits_per_cycle", word_bits * banks),
                    (*at, "bandwidth_bits_per_cycle"),
                ),
                latency_cycles=p.integer(m.get("latency_cycles", 1), (*at, "latency_cycles"), 0),
                leakage_mw=p.number(m.get("leakage_mw", 0.0), (*at, "leakage_mw")),
                source=m.get("source"),
                **_cell_facts(p, m, at, _DEFAULT_TECHNOLOGY.get(kind, "sram")),
            )
        )
    return tuple(levels)


def _cell_facts(p: _Problems, m: dict[str, Any], at: KeyPath, default: str) -> dict[str, Any]:
    """``technology``, ``endurance_cycles`` and ``retention_s`` of a level."""
    technology = m.get("technology", default)
    if "technology" in m:
        technology = p.choice(technology, (*at, "technology"), TECHNOLOGIES)
    facts: dict[str, Any] = {"technology": technology}
    for key in ("endurance_cycles", "retention_s"):
        facts[key] = p.number(m[key], (*at, key), positive=True) if key in m else None
    return facts


def _cim_level(p: _Problems, name: str, m: dict[str, Any]) -> MemoryLevel:
    """A compute-in-memory level: its arrays, converters, programming and cells."""
    at = ("memories", name)
    p.mapping(m, at, _CIM_REQUIRED, (*_CIM_OPTIONAL, *_CIM_DERIVED))
    for key in _CIM_DERIVED:
        if key in m:
            p.add(
                (*at, key),
                "a cim level derives it from its arrays (size: arrays × rows × columns × "
                "bits_per_cell; a word is one row); remove this key",
            )
    if m.get("technology") in ("dram", "rom"):
        p.add((*at, "technology"), f"a cim level's cells are programmed, not {m['technology']}")

    def integer(key: str, default: int, minimum: int = 1) -> int:
        return p.integer(m.get(key, default), (*at, key), minimum)

    def number(key: str, default: float) -> float:
        return p.number(m.get(key, default), (*at, key))

    transpose = m.get("transpose_read", False)
    if not isinstance(transpose, bool):
        p.add((*at, "transpose_read"), f"must be true or false, got {_kind(transpose)}")
        transpose = False
    if "transpose_mvm_energy_pj" in m and not transpose:
        p.add(
            (*at, "transpose_mvm_energy_pj"),
            "prices a transposed activation, but transpose_read is false: remove it or set "
            "transpose_read: true",
        )
    columns, bits_per_cell = integer("columns", 1), integer("bits_per_cell", 1)
    mvm_energy = number("mvm_energy_pj", 0.0)
    write_pulses = number("write_pulses", 1.0)
    if "write_pulses" in m and write_pulses < 1:
        p.add(
            (*at, "write_pulses"),
            f"must be at least 1 (a programmed cell takes a pulse), got {m['write_pulses']}",
        )
    arrays = CimArrays(
        arrays=integer("arrays", 1),
        rows=integer("rows", 1),
        columns=columns,
        bits_per_cell=bits_per_cell,
        mvm_energy_pj=mvm_energy,
        adc_energy_pj=number("adc_energy_pj", 0.0),
        dac_energy_pj=number("dac_energy_pj", 0.0),
        input_bits=integer("input_bits", 8),
        dac_bits=integer("dac_bits", 1),
        mvm_latency_cycles=integer("mvm_latency_cycles", 1),
        write_pulses=max(write_pulses, 1.0),
        verify_energy_pj=number("verify_energy_pj", 0.0),
        write_latency_cycles=integer("write_latency_cycles", 1),
        write_parallel_cells=integer("write_parallel_cells", columns),
        transpose_read=transpose,
        transpose_mvm_energy_pj=number("transpose_mvm_energy_pj", mvm_energy),
    )
    technology = m.get("technology", "rram")
    facts = _cell_facts(p, {**m, "technology": technology}, at, "rram")
    row_bits = columns * bits_per_cell
    return MemoryLevel(
        name=name,
        kind="cim",
        size_bytes=math.ceil(arrays.cells * bits_per_cell / 8),
        word_bits=row_bits,
        banks=1,
        ports=integer("ports", 1),
        burst_words=1,
        read_energy_pj=number("read_energy_pj", 0.0),
        write_energy_pj=number("write_energy_pj", 0.0),
        bandwidth_bits_per_cycle=row_bits,
        latency_cycles=integer("latency_cycles", 1, 0),
        leakage_mw=number("leakage_mw", 0.0),
        source=m.get("source"),
        cim=arrays,
        **facts,
    )


def _interconnect(p: _Problems, value: Any) -> Interconnect:
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


def _compute(p: _Problems, value: Any) -> tuple[dict[str, int], dict[str, float]]:
    at = ("compute",)
    m = p.mapping(value, at, (*UNITS, "mac_energy_pj"), ())
    macs = {}
    for unit in UNITS:
        if unit in m:
            u = p.mapping(m[unit], (*at, unit), ("macs_per_cycle",), ())
            if "macs_per_cycle" in u:
                macs[unit] = p.integer(u["macs_per_cycle"], (*at, unit, "macs_per_cycle"))
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
    return macs, dict(sorted(table.items(), key=lambda kv: _format_rank(kv[0])))


def _mac_format(p: _Problems, key: Any, path: KeyPath) -> str | None:
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


_TRAINING_DEFAULTS: dict[str, Any] = {
    "bp_weight_access": "transport",
    "feedback_storage": "sram",
    "prng_energy_per_value_pj": 0.0,
    "prng_values_per_cycle": 64,
    "samples_per_weight_fetch": "auto",
    "gradient_bits": 32,
    "optimizer_state_bits": 32,
    "gradient_format": None,
    "optimizer_state_format": None,
    "pinned": [],
    "loop_order": "auto",
    "objective": "energy",
    "update": "accumulate",
    "mirror_sync_via": None,
    "mirror_sync": "full",
}


def _training(p: _Problems, value: Any) -> dict[str, Any]:
    at = ("training",)
    m = p.mapping(value, at, (), tuple(_TRAINING_DEFAULTS))
    v = {**_TRAINING_DEFAULTS, **{k: m[k] for k in m if k in _TRAINING_DEFAULTS}}
    storage = p.choice(v["feedback_storage"], (*at, "feedback_storage"), FEEDBACK_STORAGE)
    if storage == "prng" and "prng_energy_per_value_pj" not in m:
        p.add((*at, "prng_energy_per_value_pj"), "required when feedback_storage is prng")
    reuse = v["samples_per_weight_fetch"]
    if reuse != "auto":
        reuse = p.integer(reuse, (*at, "samples_per_weight_fetch"))
    return {
        "bp_weight_access": p.choice(
            v["bp_weight_access"], (*at, "bp_weight_access"), BP_WEIGHT_ACCESS
        ),
        "feedback_storage": storage,
        "prng_energy_per_value_pj": p.number(
            v["prng_energy_per_value_pj"], (*at, "prng_energy_per_value_pj")
        ),
        "prng_values_per_cycle": p.integer(
            v["prng_values_per_cycle"], (*at, "prng_values_per_cycle")
        ),
        "samples_per_weight_fetch": None if reuse == "auto" else reuse,
        **_stored_format(p, m, "gradient"),
        **_stored_format(p, m, "optimizer_state"),
        "pinned": _pinned(p, v["pinned"], (*at, "pinned")),
        "loop_order": p.choice(v["loop_order"], (*at, "loop_order"), LOOP_ORDERS),
        "objective": p.choice(v["objective"], (*at, "objective"), OBJECTIVES),
        "update": p.choice(v["update"], (*at, "update"), UPDATE_MODES),
        "mirror_sync_via": v["mirror_sync_via"],
        "mirror_sync": p.choice(v["mirror_sync"], (*at, "mirror_sync"), MIRROR_SYNC),
    }


def _stored_format(p: _Problems, m: dict[str, Any], tensor: str) -> dict[str, Any]:
    """``training.<tensor>_bits`` and its companion ``training.<tensor>_format``.

    Either may be given alone: bits alone mean ``int<bits>``, a format alone sets the bits;
    both must agree; neither means 32-bit ``int32``.
    """
    at = ("training",)
    bits_key, format_key = f"{tensor}_bits", f"{tensor}_format"
    bits = p.integer(m[bits_key], (*at, bits_key)) if bits_key in m else None
    name: str | None = None
    if m.get(format_key) is not None:
        try:
            fmt = parse_format(m[format_key], f"training.{format_key}")
        except InputError:
            p.add(
                (*at, format_key),
                f"unknown number format {m[format_key]!r} (expected {', '.join(FORMATS)} or "
                "int<N>)",
            )
        else:
            name = fmt.name
            if bits is not None and bits != fmt.bits:
                p.add(
                    (*at, format_key),
                    f"{name} has {fmt.bits} bits but {bits_key} is {bits}: give one, or both "
                    "agreeing",
                )
            bits = fmt.bits
    if bits is None:
        bits = _TRAINING_DEFAULTS[bits_key]
    return {bits_key: bits, format_key: name or int_format(bits)}


def _pinned(p: _Problems, value: Any, at: KeyPath) -> tuple[str, ...]:
    """``training.pinned``: tensor classes placed before any other, whatever their traffic."""
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        p.add(at, f"must be a list of tensor classes ({', '.join(TENSORS)}), got {value!r}")
        return ()
    unknown = [t for t in value if t not in TENSORS]
    if unknown:
        p.add(at, f"unknown tensor class(es) {', '.join(unknown)} (expected {', '.join(TENSORS)})")
    if len(set(value)) != len(value):
        p.add(at, "lists a tensor class twice")
    return tuple(t for t in value if t in TENSORS)


def _placement(
    p: _Problems, value: Any, memories: tuple[MemoryLevel, ...], training: dict[str, Any]
) -> dict[str, str]:
    at = ("placement",)
    storage = training["feedback_storage"]
    mirror = training["bp_weight_access"] == "mirror"
    required = ["weights", "activations", "errors", "gradients", "optimizer_state"]
    if storage != "prng":
        required.append("feedback_weights")
    if mirror:
        required.append("weight_mirror")
    m = p.mapping(value, at, tuple(required), tuple(t for t in TENSORS if t not in required))
    kinds = {level.name: level.kind for level in memories}
    placement: dict[str, str] = {}
    for tensor, level in m.items():
        if tensor == "source":
            continue
        key = (*at, tensor)
        if tensor not in TENSORS:
            continue  # already reported as unknown
        if not isinstance(level, str) or level not in kinds:
            p.add(key, f"names no memory level (have: {', '.join(kinds) or 'none'}), got {level!r}")
            continue
        placement[tensor] = level
        if kinds[level] == "cim" and tensor not in CIM_TENSORS:
            p.add(
                key,
                f"{level!r} is a cim level: it holds only {', '.join(CIM_TENSORS)} (the "
                f"tensors an in-memory product multiplies), not {tensor}",
            )
        elif tensor == "feedback_weights":
            if storage == "prng":
                p.add(key, "feedback_storage is prng: regenerated feedback has no placement")
            elif kinds[level] not in _STORAGE_KINDS[storage]:
                p.add(
                    key,
                    f"feedback_storage is {storage}, so it must name a "
                    f"{' or '.join(_STORAGE_KINDS[storage])} level, but {level!r} is a "
                    f"{kinds[level]}",
                )
        elif kinds[level] == "rom":
            p.add(key, f"{tensor} are written during training and cannot live in ROM {level!r}")
    via = training["mirror_sync_via"]
    if via is not None and (not isinstance(via, str) or via not in kinds):
        p.add(
            ("training", "mirror_sync_via"),
            f"names no memory level (have: {', '.join(kinds) or 'none'}), got {via!r}",
        )
    elif via is not None and kinds[via] == "rom":
        p.add(("training", "mirror_sync_via"), f"{via!r} is a ROM: nothing can be written there")
    elif via is not None and kinds[via] == "cim":
        p.add(("training", "mirror_sync_via"), f"{via!r} is a cim level: it stages no data")
    if training["bp_weight_access"] == "transpose" and "weights" in placement:
        level = next(m for m in memories if m.name == placement["weights"])
        if level.cim is None:
            p.add(
                ("training", "bp_weight_access"),
                f"transpose reads W's own array transposed, but placement.weights names "
                f"{level.name!r}, a {level.kind} level, not a cim level; use transport or mirror",
            )
        elif not level.cim.transpose_read:
            p.add(
                ("training", "bp_weight_access"),
                f"transpose needs memories.{level.name}.transpose_read: true (its arrays "
                "cannot be read transposed); use mirror or transport, or give the arrays row "
                "converters (transpose_read: true)",
            )
    # (a weight_mirror placement may stay in a transport chip, so users can flip the mode)
    if mirror and placement.get("weight_mirror") == placement.get("weights") is not None:
        p.add((*at, "weight_mirror"), "a mirror must live in a different memory than weights")
    return placement
