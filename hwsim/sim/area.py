"""The silicon a rule's own stored tensors take: BP's mirror of W, a sign mirror, B, DFA's D,
brSF/frSF's magnitudes (docs/simulator.md, "Size and area").

For each such tensor: the levels its layers were placed in, with the bits stored there; the
area of those levels (the memory a chip must build to hold it, which other tensors may share);
and the area its bits occupy (each level's area × the share of its capacity the tensor fills).
A tensor in an off-chip DRAM takes no silicon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwsim.core.workload import Workload
from hwsim.sim.chip import Chip
from hwsim.sim.dataflow import Plan, stored_bits

#: The tensors a rule keeps beyond what every rule keeps (W, ΔW, state, activations, errors).
OWN_TENSORS = ("weight_mirror", "feedback_weights")


@dataclass(frozen=True)
class OwnSilicon:
    """Where one of a rule's own tensors lives and the silicon that takes."""

    tensor: str
    #: level → bits of the tensor stored there (all layers), innermost level first
    levels: dict[str, int]
    #: the whole area of those levels, mm² (None when one of them has no known area)
    area_mm2: float | None
    #: Σ over those levels of bits stored ÷ the level's capacity × its area, mm²
    occupied_mm2: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``own_silicon`` in docs/simulator.md)."""
        return {
            "levels": dict(self.levels),
            "area_mm2": self.area_mm2,
            "occupied_mm2": self.occupied_mm2,
        }


def own_silicon(workload: Workload, chip: Chip, plan: Plan) -> dict[str, OwnSilicon]:
    """The silicon of each of the rule's own tensors (:data:`OWN_TENSORS`) it stores, with the
    plan's placement; empty for a rule that stores none (BP with weight transport)."""
    bits: dict[str, dict[str, int]] = {}
    for row in stored_bits(workload, chip, plan.rule, plan.batch_size):
        if row["tensor"] in OWN_TENSORS:
            level = plan.placement[(row["tensor"], row["layer"])]
            per_level = bits.setdefault(row["tensor"], {})
            per_level[level] = per_level.get(level, 0) + row["bits"]
    order = [m.name for m in chip.memories]
    out = {}
    for tensor in OWN_TENSORS:
        if tensor not in bits:
            continue
        levels = dict(sorted(bits[tensor].items(), key=lambda kv: order.index(kv[0])))
        areas = [chip.memory(level).area_mm2 for level in levels]
        known = [a for a in areas if a is not None]
        whole = sum(known) if len(known) == len(areas) else None
        occupied = None
        if whole is not None:
            occupied = sum(
                stored / chip.memory(level).size_bits * (chip.memory(level).area_mm2 or 0.0)
                for level, stored in levels.items()
            )
        out[tensor] = OwnSilicon(tensor, levels, whole, occupied)
    return out


def describe_own_silicon(silicon: dict[str, OwnSilicon]) -> str:
    """One line: each own tensor's levels with their area and what the tensor fills of them,
    e.g. ``weight mirror in err_weight_sram: 3.77 mm² (it fills 0.0211 mm²)``."""
    parts = []
    for tensor, s in silicon.items():
        where = ", ".join(s.levels)
        if s.area_mm2 is None or s.occupied_mm2 is None:
            parts.append(f"{tensor.replace('_', ' ')} in {where}: area unknown")
        elif s.area_mm2 == 0:  # a DRAM: off chip
            parts.append(f"{tensor.replace('_', ' ')} in {where}: no silicon on chip")
        else:
            parts.append(
                f"{tensor.replace('_', ' ')} in {where}: {s.area_mm2:.3g} mm² "
                f"(it fills {s.occupied_mm2:.3g} mm²)"
            )
    return "; ".join(parts)
