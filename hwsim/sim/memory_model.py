"""Memories that follow their size, and silicon area (docs/simulator.md, "Size and area").

A memory level may give its energies, access latency and leakage explicitly, or ask for them
(``model: cacti45``): they are then derived from its capacity, word width, ports and banks by
power laws fitted to CACTI 7.0 runs at 45 nm. The same runs give an SRAM level's area; a MAC
lane's area comes from Horowitz's 45 nm table. Every derived number carries the source it is
derived from (:data:`CACTI45_SOURCE`, :data:`SRAM_AREA_SOURCE`, :data:`MAC_AREA_SOURCE`).

The fits are computed here from the tabulated runs, so every constant can be traced to a row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hwsim.core.formats import unit_for

#: The size models a memory level may name (``model:``) and the technologies each can size.
MODELS = {"cacti45": ("sram",)}
#: The keys a model derives; a level that names a model may not give them.
DERIVED_KEYS = ("read_energy_pj", "write_energy_pj", "latency_cycles", "leakage_mw", "area_mm2")

#: CACTI 7.0, 45 nm, ``cache type "ram"``, one bank, one read-write port, 64-bit word and bus,
#: itrs-lstp cells and periphery, 350 K, otherwise the distribution's cache.cfg (ED² optimised);
#: capacity in bytes → (read pJ, write pJ, access ns, standby leakage mW, area mm²). Energies,
#: access times and leakage are the runs the shipped chips cite; the areas are the data-array
#: areas of the same configuration, rerun for this model (docs/simulator.md).
CACTI45_POINTS: dict[int, tuple[float, float, float, float, float]] = {
    8192: (7.07, 9.03, 1.07, 0.0018, 0.0294),
    262144: (50.9, 43.9, 2.77, 0.0485, 0.974),
    1048576: (106.0, 86.5, 4.13, 0.184, 3.687),
}
#: The same configuration at 256 KB with other word (and bus) widths: bits → (read, write pJ),
#: the 64-bit run of the same series included (its ratios set the width law).
CACTI45_WIDTHS: dict[int, tuple[float, float]] = {
    32: (36.70, 27.14),
    64: (50.90, 43.72),
    128: (82.70, 78.62),
    256: (148.43, 140.28),
}
#: The same configuration at 256 KB with one and with two read-write ports: (read pJ, write pJ,
#: access ns, leakage mW, area mm²) each.
CACTI45_PORTS: dict[int, tuple[float, float, float, float, float]] = {
    1: (50.90, 43.72, 2.772, 0.0484, 0.9738),
    2: (101.12, 83.74, 3.125, 0.0552, 1.8507),
}

CACTI45_SOURCE = (
    "derived by model cacti45, not measured: power laws in capacity fitted (least squares in "
    "log-log; leakage proportional to capacity) to CACTI 7.0 runs (Balasubramonian et al., "
    "ACM TACO 14(2), 2017), 45 nm itrs-lstp, 350 K, one 64-bit read-write port, at 8 KB "
    "(7.07/9.03 pJ, 1.07 ns, 0.0018 mW), 256 KB (50.9/43.9 pJ, 2.77 ns, 0.0485 mW) and 1 MB "
    "(106/86.5 pJ, 4.13 ns, 0.184 mW); word width and ports from runs of the same "
    "configuration; an access touches one bank of size/banks; docs/simulator.md, "
    "'Size and area'"
)
SRAM_AREA_SOURCE = (
    "derived, not measured: power law in capacity fitted to the data-array area of CACTI 7.0 "
    "runs (Balasubramonian et al., ACM TACO 2017), 45 nm itrs-lstp, one 64-bit port: 8 KB "
    "0.0294, 256 KB 0.974, 1 MB 3.687 mm²; banks × one bank of size/banks, ports from a "
    "2-port run; docs/simulator.md, 'Size and area'"
)
MAC_AREA_SOURCE = (
    "derived, not measured: MAC lanes (the units' macs_per_cycle) × one lane sized for the "
    "supported format of largest area, one multiplier + one adder each, Horowitz, 'Computing's "
    "energy problem', ISSCC 2014, 45 nm: int8 282 + 36, int32 3495 + 137, fp16 1640 + 1360, "
    "fp32 7700 + 4184 µm² (a format not in that table takes the narrowest tabulated format "
    "of its family that holds it); docs/simulator.md, 'Size and area'"
)
DRAM_AREA_SOURCE = "off chip: a DRAM takes no area on this chip's die"

#: Horowitz ISSCC 2014, 45 nm: (adder, multiplier) area in µm² per number format.
HOROWITZ45_AREA_UM2: dict[str, tuple[float, float]] = {
    "int8": (36.0, 282.0),
    "int32": (137.0, 3495.0),
    "fp16": (1360.0, 1640.0),
    "fp32": (4184.0, 7700.0),
}


@dataclass(frozen=True)
class PowerLaw:
    """``y = coefficient · x ** exponent``."""

    coefficient: float
    exponent: float

    def __call__(self, x: float) -> float:
        return float(self.coefficient * x**self.exponent)


def fit_power_law(points: Iterable[tuple[float, float]], exponent: float | None = None) -> PowerLaw:
    """Least squares of ``log y`` on ``log x``; with ``exponent`` given, only the coefficient
    (the geometric mean of ``y / x**exponent``)."""
    xs, ys = zip(*((math.log(x), math.log(y)) for x, y in points), strict=True)
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    if exponent is None:
        spread = sum((x - mean_x) ** 2 for x in xs)
        exponent = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return PowerLaw(math.exp(mean_y - exponent * mean_x), exponent)


def _ratio_exponent(ratios: Sequence[tuple[float, float]]) -> float:
    """The exponent ``k`` of ``y_ratio = x_ratio ** k`` by least squares through the origin in
    log-log (the reference point itself is exact)."""
    xs = [math.log(x) for x, _ in ratios]
    ys = [math.log(y) for _, y in ratios]
    return sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)


#: capacity (bytes) → figure of one 64-bit, one-port bank, fitted to :data:`CACTI45_POINTS`
_SIZE_LAWS = {
    name: fit_power_law(
        ((size, row[i]) for size, row in CACTI45_POINTS.items()),
        exponent=1.0 if name == "leakage_mw" else None,
    )
    for i, name in enumerate(
        ("read_energy_pj", "write_energy_pj", "access_ns", "leakage_mw", "area_mm2")
    )
}
#: access bits / 64 → factor on the read and write energy (:data:`CACTI45_WIDTHS`)
_WIDTH_EXPONENTS = {
    name: _ratio_exponent(
        [(bits / 64, row[i] / CACTI45_WIDTHS[64][i]) for bits, row in CACTI45_WIDTHS.items()]
    )
    for i, name in enumerate(("read_energy_pj", "write_energy_pj"))
}
#: ports → factor on each figure: the 2-port run's ratio to the 1-port one, as ``ports ** k``
_PORT_EXPONENTS = {
    name: math.log2(CACTI45_PORTS[2][i] / CACTI45_PORTS[1][i])
    for i, name in enumerate(
        ("read_energy_pj", "write_energy_pj", "access_ns", "leakage_mw", "area_mm2")
    )
}


@dataclass(frozen=True)
class SramFigures:
    """What model cacti45 derives for one SRAM level."""

    read_energy_pj: float
    write_energy_pj: float
    access_ns: float
    leakage_mw: float
    area_mm2: float

    def latency_cycles(self, clock_hz: float) -> int:
        """The access time in whole cycles of ``clock_hz``, at least one."""
        return max(1, math.ceil(self.access_ns * 1e-9 * clock_hz - 1e-9))


def cacti45(
    size_bytes: float, word_bits: int = 64, banks: int = 1, ports: int = 1, burst_words: int = 1
) -> SramFigures:
    """Energies per access, access time, standby leakage and area of an SRAM level at 45 nm.

    The level is ``banks`` banks of ``size_bytes / banks`` each; an access touches one bank and
    moves ``word_bits × burst_words`` bits. Per bank: each figure is its power law in the bank's
    capacity (leakage proportional to it), the energies × (access bits / 64) ** k_width, every
    figure × ports ** k_port. Leakage and area are the banks' together.
    """
    bank = size_bytes / banks
    width = word_bits * burst_words / 64

    def figure(name: str) -> float:
        value = _SIZE_LAWS[name](bank) * float(ports) ** _PORT_EXPONENTS[name]
        if name in _WIDTH_EXPONENTS:
            value *= width ** _WIDTH_EXPONENTS[name]
        return float(value)

    return SramFigures(
        read_energy_pj=figure("read_energy_pj"),
        write_energy_pj=figure("write_energy_pj"),
        access_ns=figure("access_ns"),
        leakage_mw=banks * figure("leakage_mw"),
        area_mm2=banks * figure("area_mm2"),
    )


def mac_lane_area_um2(formats: Iterable[str]) -> float | None:
    """Area of one MAC lane that runs every format of ``formats``: the largest of their areas
    (a lane built for the widest product runs the narrower ones), each format priced as the
    narrowest tabulated format of its family that holds it (:data:`HOROWITZ45_AREA_UM2`);
    ``None`` when one has no tabulated format able to run it."""
    areas = []
    for name in formats:
        tabulated = unit_for(name, tuple(HOROWITZ45_AREA_UM2))
        if tabulated is None:
            return None
        areas.append(sum(HOROWITZ45_AREA_UM2[tabulated]))
    return float(max(areas)) if areas else None
