"""Pricing: turn counts (and a latency) into energy with a chip's numbers.

Energy = Σ accesses × energy per access (read for reads and transport, write for writes)
+ interconnect bits × energy per bit + MACs × energy per MAC (by number format)
+ generated feedback values × PRNG energy per value + leakage power × time.
Counting never depends on anything here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TypeVar

from hwsim.sim.chip import Chip
from hwsim.sim.counting import CountKey, Counts

_K = TypeVar("_K")  # a key of one of the energy breakdowns

#: Keys of :attr:`Energy.breakdown_pj`, in report order. Their values sum to the total.
ENERGY_PARTS = ("memory", "interconnect", "compute", "feedback_generation", "leakage")


@dataclass(frozen=True)
class Energy:
    """Energy of one step (or an init, or a whole run), in picojoules.

    ``total_pj`` equals the sum of ``breakdown_pj``; ``memory_by_level_pj`` splits its memory
    part, ``by_phase_pj`` splits everything but leakage, ``by_access_pj`` prices each count key.
    """

    total_pj: float
    breakdown_pj: dict[str, float]
    memory_by_level_pj: dict[str, float]
    by_phase_pj: dict[str, float]
    by_access_pj: dict[CountKey, float]

    def scaled(self, factor: float) -> Energy:
        """This energy repeated ``factor`` times."""
        return Energy(
            self.total_pj * factor,
            {k: v * factor for k, v in self.breakdown_pj.items()},
            {k: v * factor for k, v in self.memory_by_level_pj.items()},
            {k: v * factor for k, v in self.by_phase_pj.items()},
            {k: v * factor for k, v in self.by_access_pj.items()},
        )

    def __add__(self, other: Energy) -> Energy:
        def merge(a: dict[_K, float], b: dict[_K, float]) -> dict[_K, float]:
            out: defaultdict[_K, float] = defaultdict(float, a)
            for k, v in b.items():
                out[k] += v
            return dict(out)

        breakdown = merge(self.breakdown_pj, other.breakdown_pj)
        return Energy(
            sum(breakdown[k] for k in ENERGY_PARTS),
            breakdown,
            merge(self.memory_by_level_pj, other.memory_by_level_pj),
            merge(self.by_phase_pj, other.by_phase_pj),
            merge(self.by_access_pj, other.by_access_pj),
        )


def leakage_mw(chip: Chip) -> float:
    """Leakage power of all memories together, in milliwatts."""
    return sum(m.leakage_mw for m in chip.memories)


def price(counts: Counts, chip: Chip, latency_cycles: int) -> Energy:
    """Price ``counts`` of a stretch of ``latency_cycles`` cycles on ``chip``."""
    by_access: dict[CountKey, float] = {}
    by_level: dict[str, float] = defaultdict(float)
    by_phase: dict[str, float] = defaultdict(float)
    for key, count in counts.accesses.items():
        level_name, _, phase, direction = key
        level = chip.memory(level_name)
        per_access = level.access_energy_pj(direction)
        energy = count.accesses * per_access
        by_access[key] = energy
        by_level[level_name] += energy
        by_phase[phase] += energy
    interconnect = 0.0
    for (_, phase), bits in counts.interconnect_bits.items():
        energy = bits * chip.interconnect.energy_per_bit_pj
        interconnect += energy
        by_phase[phase] += energy
    compute = 0.0
    for (phase, mac_format), macs in counts.macs.items():
        energy = macs * chip.mac_energy_for(mac_format, f"{phase} MACs")
        compute += energy
        by_phase[phase] += energy
    generation = 0.0
    for phase, values in counts.generated_values.items():
        energy = values * chip.prng_energy_per_value_pj
        generation += energy
        by_phase[phase] += energy
    # mW × s = mJ = 1e9 pJ
    leakage = leakage_mw(chip) * (latency_cycles / chip.clock_hz) * 1e9
    breakdown = {
        "memory": sum(by_level.values()),
        "interconnect": interconnect,
        "compute": compute,
        "feedback_generation": generation,
        "leakage": leakage,
    }
    return Energy(
        total_pj=sum(breakdown[k] for k in ENERGY_PARTS),
        breakdown_pj=breakdown,
        memory_by_level_pj=dict(by_level),
        by_phase_pj=dict(by_phase),
        by_access_pj=by_access,
    )
