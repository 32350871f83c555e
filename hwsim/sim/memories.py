"""Memory levels of a chip: the ``memories:`` section, its kinds and cell technologies, and the
typed :class:`MemoryLevel` each level validates to (a ``kind: cim`` level's arrays are
:mod:`hwsim.sim.cim`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwsim.core.yaml_lines import KeyPath
from hwsim.sim.chip_problems import Problems, kind_of
from hwsim.sim.cim import CIM_DERIVED, CIM_OPTIONAL, CIM_REQUIRED, CimArrays
from hwsim.sim.memory_model import (
    DERIVED_KEYS,
    DRAM_AREA_SOURCE,
    MODELS,
    SRAM_AREA_SOURCE,
    cacti45,
)

#: The roles a memory level may play (``kind:``).
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
    #: the size model that derived the energies, latency, leakage and area (``model:``), if any
    model: str | None = None
    #: silicon area on the chip, mm² (0 for an off-chip DRAM; None: not given, no model)
    area_mm2: float | None = None
    #: where a derived or missing area comes from; None when ``area_mm2`` is given (the
    #: ``source:`` note covering it says, :attr:`hwsim.sim.chip.Chip.sources`)
    area_source: str | None = None

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
        """Energy of one access: the write energy for writes (and ``drain``: what the MAC array
        writes back, :mod:`hwsim.sim.spatial`), the read energy otherwise (reads, BP's transport
        reads, and ``feed``: operands read into the MAC array).

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
        return self.write_energy_pj if direction in WRITES else self.read_energy_pj


#: directions priced at a level's write energy
WRITES = frozenset({"write", "drain"})

_MEMORY_REQUIRED = ("kind", "size_bytes", "word_bits", "read_energy_pj")
#: What a level that names a size model (``model:``) must give: the rest is derived.
_MODEL_REQUIRED = ("kind", "size_bytes", "word_bits")
_MEMORY_OPTIONAL = (
    "read_energy_pj",
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
    "model",
    "area_mm2",
)


def parse_memories(p: Problems, value: Any, clock_hz: float) -> tuple[MemoryLevel, ...]:
    """The ``memories:`` section, innermost first; ``clock_hz`` turns a derived access time into
    cycles."""
    if not isinstance(value, dict) or not value:
        p.add(("memories",), "must be a non-empty mapping of memory name → level")
        return ()
    levels = []
    for name, spec in value.items():
        if isinstance(spec, dict) and spec.get("kind") == "cim":
            levels.append(_cim_level(p, str(name), spec))
        else:
            level = _digital_level(p, str(name), spec, clock_hz)
            if level is not None:
                levels.append(level)
    return tuple(levels)


def _digital_level(p: Problems, name: str, spec: Any, clock_hz: float) -> MemoryLevel | None:
    """A register file, SRAM, global buffer, ROM or DRAM level: explicit numbers, or numbers a
    size model derives (``model: cacti45``, :mod:`hwsim.sim.memory_model`)."""
    at = ("memories", name)
    modelled = isinstance(spec, dict) and "model" in spec
    m = p.mapping(spec, at, _MODEL_REQUIRED if modelled else _MEMORY_REQUIRED, _MEMORY_OPTIONAL)
    if not m:
        return None
    kind = p.choice(m.get("kind"), (*at, "kind"), MEMORY_KINDS) if "kind" in m else "sram"
    facts = _cell_facts(p, m, at, _DEFAULT_TECHNOLOGY.get(kind, "sram"))
    size = p.integer(m.get("size_bytes", 1), (*at, "size_bytes"))
    word_bits = p.integer(m.get("word_bits", 1), (*at, "word_bits"))
    banks = p.integer(m.get("banks", 1), (*at, "banks"))
    ports = p.integer(m.get("ports", 1), (*at, "ports"))
    burst_words = p.integer(m.get("burst_words", 1), (*at, "burst_words"))
    model = _size_model(p, m, at, kind, facts["technology"])
    if kind == "rom" and "write_energy_pj" in m:
        p.add((*at, "write_energy_pj"), "a ROM is never written: remove this key")
    if kind != "rom" and not modelled and "write_energy_pj" not in m:
        p.add((*at, "write_energy_pj"), "missing required key (only a ROM has none)")
    sram = cacti45(size, word_bits, banks, ports, burst_words)
    if model is not None:
        read, write, leakage = sram.read_energy_pj, sram.write_energy_pj, sram.leakage_mw
        latency = sram.latency_cycles(clock_hz)
    else:
        read = p.number(m.get("read_energy_pj", 0.0), (*at, "read_energy_pj"))
        write = p.number(m.get("write_energy_pj", 0.0), (*at, "write_energy_pj"))
        latency = p.integer(m.get("latency_cycles", 1), (*at, "latency_cycles"), 0)
        leakage = p.number(m.get("leakage_mw", 0.0), (*at, "leakage_mw"))
    area, area_source = _area(p, m, at, kind, facts["technology"], model, sram.area_mm2)
    return MemoryLevel(
        name=name,
        kind=kind,
        size_bytes=size,
        word_bits=word_bits,
        banks=banks,
        ports=ports,
        burst_words=burst_words,
        read_energy_pj=read,
        write_energy_pj=write,
        bandwidth_bits_per_cycle=p.integer(
            m.get("bandwidth_bits_per_cycle", word_bits * banks),
            (*at, "bandwidth_bits_per_cycle"),
        ),
        latency_cycles=latency,
        leakage_mw=leakage,
        source=m.get("source"),
        model=model,
        area_mm2=area,
        area_source=area_source,
        **facts,
    )


def _size_model(
    p: Problems, m: dict[str, Any], at: KeyPath, kind: str, technology: str
) -> str | None:
    """The level's ``model:`` if it names one that can size it, else ``None`` (and a problem
    when it names one that cannot). A key the model derives that is also given is a problem
    naming both."""
    if "model" not in m:
        return None
    model = m["model"]
    here = (*at, "model")
    if not isinstance(model, str) or model not in MODELS:
        p.add(here, f"unknown size model {model!r} (known: {', '.join(MODELS)})")
        return None
    if kind in ("dram", "rom") or technology not in MODELS[model]:
        what = f"a {kind}" if kind in ("dram", "rom") else f"{technology} cells"
        p.add(
            here,
            f"model {model} sizes {' or '.join(MODELS[model])} levels, not {what}: no published "
            "size law for them is cited here (docs/technologies.md); remove model and give "
            "read_energy_pj, write_energy_pj, latency_cycles, leakage_mw (and area_mm2) with "
            "their source",
        )
        return None
    level = ".".join(map(str, at))
    for key in DERIVED_KEYS:
        if key in m:
            p.add(
                (*at, key),
                f"given, but {level}.model: {model} ({p.where(here)}) derives it; give one of "
                f"the two (a chip that extends another, or --set, removes an inherited value "
                f"with {key}: null)",
            )
    return model


def _area(
    p: Problems,
    m: dict[str, Any],
    at: KeyPath,
    kind: str,
    technology: str,
    model: str | None,
    sram_area_mm2: float,
) -> tuple[float | None, str | None]:
    """A level's area on the chip and its source: ``None`` as source when ``area_mm2`` is
    given (the ``source:`` note covering it says where it comes from, :attr:`Chip.sources`);
    derived for SRAM cells; 0 for a DRAM (off chip); unknown (``None``) otherwise."""
    if kind == "dram":
        if "area_mm2" in m:
            p.add((*at, "area_mm2"), f"{DRAM_AREA_SOURCE} (its area is 0 here): remove this key")
        return 0.0, DRAM_AREA_SOURCE
    if "area_mm2" in m and model is None:
        return p.number(m["area_mm2"], (*at, "area_mm2")), None
    if technology == "sram" and kind != "rom":
        return sram_area_mm2, SRAM_AREA_SOURCE
    return None, f"not given: no area model for {technology} cells (give area_mm2 and its source)"


def _cell_facts(p: Problems, m: dict[str, Any], at: KeyPath, default: str) -> dict[str, Any]:
    """``technology``, ``endurance_cycles`` and ``retention_s`` of a level."""
    technology = m.get("technology", default)
    if "technology" in m:
        technology = p.choice(technology, (*at, "technology"), TECHNOLOGIES)
    facts: dict[str, Any] = {"technology": technology}
    for key in ("endurance_cycles", "retention_s"):
        facts[key] = p.number(m[key], (*at, key), positive=True) if key in m else None
    return facts


#: A cim level's area is not derived: its converters dominate it and depend on choices the
#: schema does not describe (how many columns share one ADC).
_CIM_AREA_UNKNOWN = (
    "not given: a cim level's area is not derived (its converters dominate it); give area_mm2 "
    "and its source"
)


def _cim_level(p: Problems, name: str, m: dict[str, Any]) -> MemoryLevel:
    """A compute-in-memory level: its arrays, converters, programming and cells."""
    at = ("memories", name)
    p.mapping(m, at, CIM_REQUIRED, (*CIM_OPTIONAL, *CIM_DERIVED))
    for key in CIM_DERIVED:
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
        p.add((*at, "transpose_read"), f"must be true or false, got {kind_of(transpose)}")
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
        area_mm2=p.number(m["area_mm2"], (*at, "area_mm2")) if "area_mm2" in m else None,
        area_source=None if "area_mm2" in m else _CIM_AREA_UNKNOWN,
        **facts,
    )
