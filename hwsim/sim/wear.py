"""Write wear and lifetime of non-volatile cells, per rule, from a simulated step.

Torch-free. A cell of a non-volatile technology (``rram``, ``pcm``, ``fefet``, ``mram``;
:data:`hwsim.sim.memories.NON_VOLATILE`) survives ``endurance_cycles`` program operations. For every
stored (tensor, layer) in such a level this module counts the program operations per cell in
one training step, straight from the step's counts:

* in a compute-in-memory level a write access is one cell programmed, so the mean is the cells
  programmed ÷ the cells holding the tensor. An update programs only the weights whose stored
  level changed (the fraction the training run measured, ``workload.json``'s
  ``update_sparsity``), and the most-written cell is the cell of the weight that changed most
  often in the run: ``max_changes_per_weight ÷ steps`` per update. Without a measurement
  every update programs every cell (the upper bound), so mean and most-written are equal;
* in a digital level a write rewrites whole words, so every cell of the tensor is written
  as often as the tensor is: write bits ÷ stored bits per step, the same for every cell.

The first cell to fail is the one with the most program operations per step; it reaches its
endurance after ``endurance_cycles ÷ (its writes per step)`` steps, and after that many steps
÷ the run's steps training runs of the workload. The one-time init (B programmed once, IFA's
B = W₀, BP's first mirror copy) is one write per cell over a chip's life and is left out of
the rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwsim.core.stats import finite
from hwsim.core.units import MISSING
from hwsim.core.workload import Workload
from hwsim.sim.chip import Chip
from hwsim.sim.counting import Counts
from hwsim.sim.dataflow import INIT_PHASE, Plan, cim_matrix, stored_bits

#: Tensors whose writes follow the weights' measured changes (an update or a sync).
_UPDATED_LIKE_W = ("weights", "weight_mirror")


@dataclass(frozen=True)
class TensorWear:
    """Program operations per cell of one stored tensor (all its layers) in one level."""

    level: str
    technology: str
    tensor: str
    #: cells holding the tensor (for a digital level: its stored bits)
    cells: int
    #: cells programmed (or bits rewritten) per step, over every layer
    writes_per_step: float
    mean_writes_per_cell_per_step: float
    #: the most-written cell's program operations per step, and its layer
    max_writes_per_cell_per_step: float
    max_layer: str
    #: whether the most-written cell's rate comes from the training run's measurement
    measured: bool
    #: whether the level is a compute-in-memory level (programmed cell by cell) or digital
    level_is_cim: bool
    endurance_cycles: float | None
    #: steps until the most-written cell reaches endurance (None: no endurance or no writes)
    steps_to_endurance: float | None
    #: training runs of the workload until then (None without a run or a lifetime)
    runs_to_endurance: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/simulator.md, "Wear and lifetime")."""
        return {
            "level": self.level,
            "technology": self.technology,
            "tensor": self.tensor,
            "cells": self.cells,
            "writes_per_step": self.writes_per_step,
            "mean_writes_per_cell_per_step": self.mean_writes_per_cell_per_step,
            "max_writes_per_cell_per_step": self.max_writes_per_cell_per_step,
            "max_layer": self.max_layer,
            "measured": self.measured,
            "level_is_cim": self.level_is_cim,
            "endurance_cycles": self.endurance_cycles,
            "steps_to_endurance": self.steps_to_endurance,
            "runs_to_endurance": self.runs_to_endurance,
        }


@dataclass(frozen=True)
class Wear:
    """Wear of every non-volatile stored tensor of one rule, and the first cell to fail."""

    tensors: tuple[TensorWear, ...]
    #: layer name → the measured fraction of weight levels an update changes (empty: none)
    update_fraction: dict[str, float]
    #: updates per step (1 accumulated, the batch when fused)
    updates_per_step: int
    #: the batch the training run measured the fractions at (None: not measured)
    measured_batch: int | None = None

    @property
    def first_failure(self) -> TensorWear | None:
        """The tensor whose most-written cell reaches its endurance first (None: none will)."""
        lasting = [t for t in self.tensors if t.steps_to_endurance is not None]
        return min(lasting, key=lambda t: t.steps_to_endurance or 0.0) if lasting else None

    @property
    def measured(self) -> bool:
        """Whether the weights' writes follow a measured update sparsity."""
        return bool(self.update_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/simulator.md, "Wear and lifetime")."""
        first = self.first_failure
        return {
            "measured": self.measured,
            "updates_per_step": self.updates_per_step,
            "update_fraction": dict(self.update_fraction),
            "measured_batch": self.measured_batch,
            "tensors": [t.to_dict() for t in self.tensors],
            "first_failure": None
            if first is None
            else {
                "level": first.level,
                "tensor": first.tensor,
                "layer": first.max_layer,
                "steps": first.steps_to_endurance,
                "runs": first.runs_to_endurance,
            },
        }


def change_rate(workload: Workload, layer: str) -> float | None:
    """Steps in which the most-changed weight of ``layer`` changed ÷ the steps measured (the
    most-written cell's program operations per update), or None when not measured."""
    measured = workload.update_sparsity
    stats = measured.layers.get(layer) if measured is not None else None
    if stats is None or not stats.total_steps:
        return None
    return float(stats.max_changes_per_weight / stats.total_steps)


def step_wear(
    workload: Workload, chip: Chip, plan: Plan, counts_by_layer: dict[str, Counts]
) -> Wear | None:
    """Wear of one step of ``plan`` (``counts_by_layer``: the step's counts per layer name);
    None on a chip without non-volatile levels."""
    levels = {m.name: m for m in chip.memories if m.non_volatile}
    if not levels:
        return None
    layers = workload.layers
    by_key: dict[tuple[str, str], list[tuple[str, int, float, float, bool]]] = {}
    for row in stored_bits(workload, chip, plan.rule, plan.batch_size):
        tensor, i = row["tensor"], row["layer"]
        level = levels.get(plan.placement[(tensor, i)])
        if level is None:
            continue
        name = layers[i].name
        counts = counts_by_layer.get(name)
        written = 0.0
        if counts is not None:
            written = sum(
                c.accesses if level.cim is not None else c.bits
                for (lv, t, phase, direction), c in counts.accesses.items()
                if lv == level.name and t == tensor and direction == "write" and phase != INIT_PHASE
            )
        if level.cim is not None:
            rows, per_row, bits = cim_matrix(workload, plan.rule, tensor, i)
            cells = rows * per_row * level.cim.cells_per_weight(bits)
        else:
            cells = row["bits"]
        mean = written / cells if cells else 0.0
        peak, measured = mean, False
        rate = change_rate(workload, name)
        if level.cim is not None and tensor in _UPDATED_LIKE_W and written:
            peak = (rate if rate is not None else 1.0) * plan.update_times
            measured = rate is not None
        by_key.setdefault((level.name, tensor), []).append((name, cells, written, peak, measured))
    steps_per_run = workload.steps_per_epoch * workload.epochs if workload.epochs else None
    tensors = []
    for (level_name, tensor), entries in by_key.items():
        level = levels[level_name]
        cells = sum(r[1] for r in entries)
        written = sum(r[2] for r in entries)
        top = max(entries, key=lambda r: r[3])
        steps = level.endurance_cycles / top[3] if level.endurance_cycles and top[3] else None
        runs = steps / steps_per_run if steps is not None and steps_per_run else None
        tensors.append(
            TensorWear(
                level=level_name,
                technology=level.technology,
                tensor=tensor,
                cells=cells,
                writes_per_step=written,
                mean_writes_per_cell_per_step=written / cells if cells else 0.0,
                max_writes_per_cell_per_step=top[3],
                max_layer=top[0],
                measured=top[4],
                level_is_cim=level.cim is not None,
                endurance_cycles=level.endurance_cycles,
                steps_to_endurance=steps,
                runs_to_endurance=runs,
            )
        )
    fractions = {layers[i].name: f for i, f in sorted(plan.update_fraction.items())}
    sparsity = workload.update_sparsity
    batch = sparsity.batch_size if sparsity is not None else None
    return Wear(tuple(tensors), fractions, plan.update_times, batch)


def count_text(value: Any) -> str:
    """A count of steps, runs or cycles: three significant digits, thousands separated between
    1,000 and 10⁷ (``1,000,000``, ``2.5e+08``, ``0.75``); ``—`` for none."""
    if not finite(value):
        return MISSING
    v = float(value)
    return f"{v:,.0f}" if 1000 <= v < 1e7 else f"{v:.3g}"


def describe_wear(wear: Wear) -> str:
    """One line per stored tensor: program operations per cell per step, the most-written
    cell, and when it reaches its endurance (``hwsim simulate`` prints it per rule)."""
    if not wear.tensors:
        return "nothing this rule stores is in non-volatile cells"
    parts = []
    programmed = any(t.level_is_cim and t.writes_per_step for t in wear.tensors)
    if programmed and wear.update_fraction:
        fractions = ", ".join(f"{k} {100 * f:.3g}%" for k, f in wear.update_fraction.items())
        per = "sample" if wear.updates_per_step > 1 else "update"
        parts.append(
            f"measured update sparsity (levels changed per step of batch "
            f"{wear.measured_batch}, applied per {per}): {fractions}"
        )
    elif programmed:  # digital levels rewrite whole words: the sparsity plays no part there
        parts.append("update sparsity not measured: every update writes every cell")
    for t in wear.tensors:
        where = f"{t.tensor} in {t.level} ({t.technology})"
        if not t.writes_per_step:
            parts.append(f"{where}: not written by a step")
            continue
        source = "measured" if t.measured else "upper bound"
        text = (
            f"{where}: {t.mean_writes_per_cell_per_step:.3g} writes/cell/step on average, "
            f"most-written cell {t.max_writes_per_cell_per_step:.3g} ({t.max_layer}, {source})"
        )
        if t.steps_to_endurance is not None:
            text += f"; endurance {t.endurance_cycles:.3g} reached after "
            text += f"{count_text(t.steps_to_endurance)} steps"
            if t.runs_to_endurance is not None:
                text += f" = {count_text(t.runs_to_endurance)} training runs"
        parts.append(text)
    return "; ".join(parts)
