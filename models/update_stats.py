"""Update sparsity: how many stored weight levels each optimizer step changes, per layer.

A compute-in-memory chip holds each weight as cell conductance levels; after an optimizer step
only the cells whose stored level changed are reprogrammed, and every reprogramming wears a
cell. :class:`UpdateStats` measures that during training and gives the ``update_sparsity``
object of ``workload.json`` (docs/workload.md, "Update sparsity"; the contract is
:class:`hwsim.core.workload.UpdateSparsity`).

**Levels.** For a brevitas-quantized layer the level of a weight is its integer level,
``clamp(round(W / scale))``, exactly as the forward pass computes it
(:func:`models.fastquant.weight_int`, or brevitas' own ``quant_weight().int()`` on the
reference path). The scale follows ``max|W|`` every step, so a step can move the levels of
weights whose float value barely changed: that is measured, not hidden (the cells hold levels).
For a float layer (32-bit weights, no quantizer) the level is the float value itself: any
change counts. Only the weight tensor is measured, not the bias.

**Per step** (between :meth:`UpdateStats.before_step` and :meth:`UpdateStats.after_step`), for
every weight layer: which weights' levels changed (a per-weight counter is incremented there)
and, for integer levels, the sum of ``|Δlevel|`` over them. Everything stays on the device;
nothing is read back until :meth:`UpdateStats.end_epoch`, which reads the epoch's totals once.

**Per epoch**: ``changed_fraction`` is the mean over the epoch's steps of (weights changed in
that step) / (weight elements), ``mean_level_change`` the mean ``|Δlevel|`` over the changed
weights (weighted by their count, ``0.0`` when none changed, ``None`` for float levels), and
``steps`` the steps measured. **Over the run**: the per-weight counter of steps in which that
weight's level changed; its maximum and mean.

The state (:meth:`UpdateStats.state_dict`) is held in exact integers, so a run resumed from its
checkpoint writes the same numbers as one that never stopped. A checkpoint written before this
was measured has no such state: :meth:`UpdateStats.load_state_dict` with ``None`` then records
its epochs as unmeasured (``steps`` 0, fraction 0.0), and the counters cover only the steps
measured after the resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.workload import UPDATE_SPARSITY_MEASURED
from models import fastquant
from models.convert import layer_names, weight_layers

#: Format of the levels of a float (unquantized) layer: the float32 value itself.
FLOAT_LEVELS = "fp32"


def quantized_weight(layer: nn.Module) -> bool:
    """Whether ``layer``'s weight goes through an enabled brevitas weight quantizer."""
    return isinstance(layer, QuantLinear | QuantConv2d) and bool(
        layer.weight_quant.is_quant_enabled
    )


def weight_levels(layer: nn.Module, top: int | None = None) -> Tensor:
    """The stored levels of ``layer``'s weight, without gradient (``top``: the largest level,
    ``2^(b-1) - 1``, read from the layer's quantizer when not given).

    Quantized layers: the integer levels the forward pass uses, as ``int32``
    (:func:`models.fastquant.weight_int`; brevitas' ``quant_weight().int()`` where the fast
    path does not apply). A non-finite weight (the step a run diverges on) has no level; it is
    recorded at level 0 (NaN) or the end of the range (±inf), so that every level stays in the
    format's range. Float layers: a copy of the float weight.
    """
    with torch.no_grad():
        if not quantized_weight(layer):
            return layer.weight.detach().clone()
        levels = fastquant.weight_int(layer)
        if levels is None:
            levels = layer.quant_weight().int()
        else:
            if top is None:
                top = 2 ** (int(layer.weight_quant.bit_width()) - 1) - 1
            levels = torch.nan_to_num(levels, nan=0.0, posinf=float(top), neginf=-float(top))
        return levels.to(torch.int32)


def levels_format(layer: nn.Module) -> str:
    """The number format of ``layer``'s stored levels: ``int<bits>`` of its weight quantizer,
    or ``fp32`` for a float layer (what ``workload.json`` records as ``weight_format``)."""
    if not quantized_weight(layer):
        return FLOAT_LEVELS
    return f"int{int(layer.weight_quant.bit_width())}"


def _top_level(layer: nn.Module) -> int | None:
    if not quantized_weight(layer):
        return None
    return 2 ** (int(layer.weight_quant.bit_width()) - 1) - 1


@dataclass
class _Layer:
    """One layer's measuring state. Host-side numbers are exact integers, per epoch."""

    name: str
    module: nn.Module
    weights: int
    levels: str
    top: int | None  # the largest integer level (None: float levels)
    #: per weight: steps in which its level changed (on the layer's device)
    counter: Tensor
    #: the levels after the last step, and the weight's version counter they were read at
    current: Tensor | None = None
    version: int = -1
    #: this epoch's sum of |Δlevel| (integer levels), on the device
    level_change: Tensor | None = None
    #: the levels before the step in progress
    before: Tensor | None = None
    #: sum of ``counter`` at the start of the epoch (host)
    counted: int = 0
    changed: list[int] = field(default_factory=list)  # weights changed, summed over steps
    level_changes: list[int] = field(default_factory=list)  # Σ|Δlevel|, integer levels only
    max_changes: int = 0
    total_changes: int = 0

    @property
    def integer(self) -> bool:
        return self.levels != FLOAT_LEVELS


class UpdateStats:
    """Measure the update sparsity of every weight layer of ``model`` (module docstring).

    Call :meth:`before_step` before each optimizer step and :meth:`after_step` after it (after
    anything else that changes the weights in that step: Kolen–Pollack's ``feedback_step``),
    :meth:`end_epoch` at the end of every epoch (also a diverged one: it records the steps that
    ran), and :meth:`document` for the ``update_sparsity`` object of ``workload.json``.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        names = layer_names(model)
        self._layers: list[_Layer] = []
        for _, module in weight_layers(model):
            weight = module.weight
            self._layers.append(
                _Layer(
                    name=names[module],
                    module=module,
                    weights=weight.numel(),
                    levels=levels_format(module),
                    top=_top_level(module),
                    counter=torch.zeros(weight.shape, dtype=torch.int32, device=weight.device),
                )
            )
        if not self._layers:
            raise InputError("update statistics: the model has no weight layers")
        self._steps: list[int] = []
        self._epoch_steps = 0

    @property
    def epochs(self) -> int:
        """Epochs recorded so far (measured or not)."""
        return len(self._steps)

    def _levels(self, layer: _Layer) -> Tensor:
        """The layer's levels now; read again only when the weight changed since last read."""
        version = layer.module.weight._version
        if (
            layer.current is None
            or layer.version != version
            or (layer.current.device != layer.module.weight.device)
        ):
            layer.current = weight_levels(layer.module, layer.top)
            layer.version = version
        return layer.current

    def before_step(self, model: nn.Module) -> None:
        """Remember every layer's levels before the optimizer step (``model`` is the model the
        statistics were built for)."""
        self._check_model(model)
        for layer in self._layers:
            layer.before = self._levels(layer)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """Compare every layer's levels with those :meth:`before_step` kept, and count."""
        self._check_model(model)
        for layer in self._layers:
            before = layer.before
            if before is None:
                raise RuntimeError("UpdateStats.after_step without before_step")
            layer.before = None
            after = self._levels(layer)
            if layer.counter.device != after.device:
                layer.counter = layer.counter.to(after.device)
            changed = after != before
            layer.counter += changed
            if layer.integer:
                step_change = (after - before).abs_().sum()
                if layer.level_change is None or layer.level_change.device != step_change.device:
                    layer.level_change = torch.zeros((), dtype=torch.int64, device=after.device)
                layer.level_change += step_change
        self._epoch_steps += 1

    def end_epoch(self) -> None:
        """Close the epoch: read its totals from the device (once) and start the next."""
        for layer in self._layers:
            total = int(layer.counter.sum(dtype=torch.int64))
            layer.changed.append(total - layer.counted)
            layer.counted = total
            layer.total_changes = total
            layer.max_changes = int(layer.counter.max())
            if layer.integer:
                change = 0 if layer.level_change is None else int(layer.level_change)
                layer.level_changes.append(change)
                layer.level_change = None
        self._steps.append(self._epoch_steps)
        self._epoch_steps = 0

    def _check_model(self, model: nn.Module) -> None:
        if model is not self._model:
            raise ValueError("UpdateStats: not the model these statistics were built for")

    def document(self, batch_size: int) -> dict[str, Any]:
        """The ``update_sparsity`` object of ``workload.json`` for the epochs closed so far;
        ``batch_size`` is the nominal batch the steps ran at."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        layers: dict[str, Any] = {}
        for layer in self._layers:
            fractions = [
                changed / (layer.weights * steps) if steps else 0.0
                for changed, steps in zip(layer.changed, self._steps, strict=True)
            ]
            if layer.integer:
                mean_change: list[float | None] = [
                    change / changed if changed else 0.0
                    for change, changed in zip(layer.level_changes, layer.changed, strict=True)
                ]
            else:
                mean_change = [None] * len(self._steps)
            layers[layer.name] = {
                "weights": layer.weights,
                "levels": layer.levels,
                "changed_fraction": fractions,
                "mean_level_change": mean_change,
                "steps": list(self._steps),
                "max_changes_per_weight": layer.max_changes,
                "mean_changes_per_weight": layer.total_changes / layer.weights,
            }
        return {"measured": UPDATE_SPARSITY_MEASURED, "batch_size": batch_size, "layers": layers}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly (for the checkpoint): tensors on the CPU and
        plain integers, so ``torch.load(weights_only=True)`` reads it. Call at an epoch end."""
        if self._epoch_steps:
            raise RuntimeError("UpdateStats.state_dict in the middle of an epoch")
        return {
            "steps": list(self._steps),
            "layers": {
                layer.name: {
                    "levels": layer.levels,
                    "counter": layer.counter.detach().cpu().clone(),
                    "changed": list(layer.changed),
                    "level_changes": list(layer.level_changes),
                }
                for layer in self._layers
            },
        }

    def load_state_dict(self, state: dict[str, Any] | None, epochs: int) -> None:
        """Go on from ``state`` (:meth:`state_dict`) of a run checkpointed after ``epochs``.

        ``None`` (a checkpoint from before update statistics were kept): the ``epochs`` are
        recorded as not measured (0 steps, fraction 0.0) and the counters start at zero, so
        they cover only the steps measured from here. Anything that does not fit this model is
        a :class:`ValueError` saying what.
        """
        if state is None:
            self._steps = [0] * epochs
            for layer in self._layers:
                layer.counter.zero_()
                layer.changed = [0] * epochs
                layer.level_changes = [0] * epochs if layer.integer else []
                layer.counted = layer.total_changes = layer.max_changes = 0
                layer.current = layer.before = layer.level_change = None
            self._epoch_steps = 0
            return
        if not isinstance(state, dict) or not isinstance(state.get("layers"), dict):
            raise ValueError("update statistics: expected {'steps', 'layers'}")
        steps = state.get("steps")
        if not isinstance(steps, list) or len(steps) != epochs:
            raise ValueError(f"update statistics: 'steps' must list {epochs} epochs, got {steps!r}")
        saved = state["layers"]
        if sorted(saved) != sorted(layer.name for layer in self._layers):
            raise ValueError(
                f"update statistics hold layers {sorted(saved)}, the model has "
                f"{sorted(layer.name for layer in self._layers)}"
            )
        for layer in self._layers:
            entry = saved[layer.name]
            counter = entry["counter"]
            if entry["levels"] != layer.levels or tuple(counter.shape) != tuple(
                layer.counter.shape
            ):
                raise ValueError(f"update statistics of {layer.name} do not fit its weight")
            changed, level_changes = list(entry["changed"]), list(entry["level_changes"])
            if len(changed) != epochs or len(level_changes) != (epochs if layer.integer else 0):
                raise ValueError(
                    f"update statistics of {layer.name}: per-epoch lists of wrong length"
                )
            layer.counter = counter.to(device=layer.module.weight.device, dtype=torch.int32)
            layer.changed, layer.level_changes = changed, level_changes
            layer.counted = layer.total_changes = int(layer.counter.sum(dtype=torch.int64))
            layer.max_changes = int(layer.counter.max())
            layer.current = layer.before = layer.level_change = None
        self._steps = list(steps)
        self._epoch_steps = 0
