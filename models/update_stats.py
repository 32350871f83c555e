"""Update sparsity: how many stored weight levels each optimizer step changes, per layer.

A compute-in-memory chip holds each weight as cell conductance levels; after an optimizer step
only the cells whose stored level changed are reprogrammed, and every reprogramming wears a
cell. :class:`UpdateStats` measures that during training and gives the ``update_sparsity``
object of ``workload.json`` (docs/workload.md, "Update sparsity"; the contract is
:class:`hwsim.core.workload.UpdateSparsity`).

**Levels.** For a brevitas-quantized layer the level of a weight is its integer level,
``clamp(round(W / scale))``, exactly as the forward pass computes it
(:func:`hwsim.models.fastquant.weight_int`, or brevitas' own ``quant_weight().int()`` on the
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
from hwsim.models import fastquant
from hwsim.models.convert import layer_names, weight_layers

#: Format of the levels of a float (unquantized) layer: the float32 value itself.
FLOAT_LEVELS = "fp32"


def quantized_weight(layer: nn.Module) -> bool:
    """Whether ``layer``'s weight goes through an enabled brevitas weight quantizer."""
    return isinstance(layer, QuantLinear | QuantConv2d) and bool(
        layer.weight_quant.is_quant_enabled
    )


def weight_levels(layer: nn.Module) -> Tensor:
    """The stored levels of ``layer``'s weight, without gradient: for a quantized layer its
    integer levels as ``int32`` (what the forward pass uses: brevitas' ``quant_weight().int()``),
    for a float layer a copy of the float weight. What :class:`UpdateStats` compares."""
    if not quantized_weight(layer):
        with torch.no_grad():
            return layer.weight.detach().clone()
    out = torch.empty_like(layer.weight, dtype=torch.int32)
    scratch = torch.empty_like(layer.weight, dtype=torch.float32)
    return _read_levels(layer, out, _top_level(layer), scratch)


def _read_levels(layer: nn.Module, out: Tensor, top: int | None, scratch: Tensor) -> Tensor:
    """Write ``layer``'s levels into ``out`` and return it (``top``: the largest integer level
    of a quantized layer, :func:`_top_level`, read once: brevitas computes it; ``scratch``: a
    float32 tensor of the weight's shape to compute in).

    Quantized layers: the integer levels (:func:`hwsim.models.fastquant.weight_int`; brevitas'
    ``quant_weight().int()`` where the fast path does not apply), into an integer ``out``. A
    non-finite weight (the step a run diverges on) has no level; it is recorded at level 0
    (NaN) or the end of the range (±inf), so every level stays in the format's range. Float
    layers: the float weight, into a float32 ``out``.
    """
    with torch.no_grad():
        if top is None:
            return out.copy_(layer.weight)
        levels = fastquant.weight_int(layer, out=scratch)
        if levels is None:
            levels = scratch.copy_(layer.quant_weight().int())
        torch.nan_to_num_(levels, nan=0.0, posinf=float(top), neginf=-float(top))
        return out.copy_(levels)


def levels_format(layer: nn.Module) -> str:
    """The number format of ``layer``'s stored levels: ``int<bits>`` of its weight quantizer,
    or ``fp32`` for a float layer (what ``workload.json`` records as ``weight_format``)."""
    if not quantized_weight(layer):
        return FLOAT_LEVELS
    return f"int{int(layer.weight_quant.bit_width())}"


def _top_level(layer: nn.Module) -> int | None:
    """The largest integer level of a quantized layer (narrow range: ``2^(b-1) - 1``)."""
    if not quantized_weight(layer):
        return None
    return 2 ** (int(layer.weight_quant.bit_width()) - 1) - 1


#: Float32 holds every integer up to this exactly.
_FLOAT32_EXACT = 2**24


def _exact_sum(values: Tensor, chunk: int) -> Tensor:
    """``Σ values`` as a float64 scalar, exactly, for integer ``values`` (any dtype) that are
    non-negative and at most ``2^24 / chunk`` each: summed in float32 over chunks of ``chunk``
    elements (every partial sum an integer ≤ 2^24, so every addition is exact, in any order),
    then the chunk sums in float64. On the device, without a read-back."""
    flat = values.view(-1)
    n = flat.numel()
    f32 = torch.float32
    if n <= chunk:
        return flat.sum(dtype=f32).to(torch.float64)
    full = n - n % chunk
    total = flat[:full].view(-1, chunk).sum(1, dtype=f32).to(torch.float64).sum()
    if full < n:
        total = total + flat[full:].sum(dtype=f32).to(torch.float64)
    return total


def _level_dtype(largest_change: int | None) -> torch.dtype:
    """The dtype of a layer's level buffers and epoch counter: int16 where every level
    difference fits (up to 15-bit weights), int32 above; float32 for float levels."""
    if largest_change is None:
        return torch.float32
    return torch.int16 if largest_change <= torch.iinfo(torch.int16).max else torch.int32


def _flush_every(dtype: torch.dtype) -> int:
    """Steps an epoch counter of ``dtype`` counts exactly before it must be flushed."""
    return _FLOAT32_EXACT - 1 if dtype == torch.float32 else torch.iinfo(dtype).max


@dataclass
class _Layer:
    """One layer's measuring state: device tensors and, per epoch, exact host integers."""

    name: str
    module: nn.Module
    weights: int
    levels: str
    #: the largest |Δlevel| (twice the top level; float levels: None)
    largest_change: int | None
    #: per weight: steps in which its level changed, over the measured run (int32)
    counter: Tensor
    #: the same for the steps since the last flush into ``counter``, in the levels' dtype
    #: (int16, int32 or float32), flushed before it could overflow and at the end of an epoch
    epoch_counter: Tensor
    #: two buffers of levels (integer levels: int16/int32; float: float32), before and after a
    #: step, swapped every step
    buffers: list[Tensor]
    #: steps counted in ``epoch_counter``, and how many it holds exactly
    since_flush: int = 0
    flush_every: int = 0
    #: this epoch's changes flushed so far, an int64 scalar on the device
    pending_changed: Tensor | None = None
    #: which buffer holds the current levels, and the weight's version counter they were read at
    current: int = 0
    version: int = -1
    #: the current levels were read before the step in progress
    armed: bool = False
    #: this epoch's Σ|Δlevel| (integer levels), a float64 scalar on the device
    level_change: Tensor | None = None
    changed: list[int] = field(default_factory=list)  # weights changed, summed over steps
    level_changes: list[int] = field(default_factory=list)  # Σ|Δlevel|, integer levels only
    max_changes: int = 0
    total_changes: int = 0

    @property
    def integer(self) -> bool:
        return self.largest_change is not None

    def levels_now(self, scratch: Tensor) -> Tensor:
        """The current levels; read again only when the weight changed since last read
        (``scratch``: float32, the weight's shape, on its device)."""
        weight = self.module.weight
        buffer = self.buffers[self.current]
        if self.version != weight._version or buffer.device != weight.device:
            if buffer.device != weight.device:
                self.to(weight.device)
                buffer = self.buffers[self.current]
            top = None if self.largest_change is None else self.largest_change // 2
            _read_levels(self.module, buffer, top, scratch)
            self.version = weight._version
        return buffer

    def flush(self) -> None:
        """Add the epoch counter into the run's counter and the epoch's changes (on the
        device), and zero it."""
        counts = self.epoch_counter.to(torch.int32)
        changed = counts.sum(dtype=torch.int64)
        self.pending_changed = (
            changed if self.pending_changed is None else self.pending_changed.add_(changed)
        )
        self.counter += counts
        self.epoch_counter.zero_()
        self.since_flush = 0

    def restart(self) -> None:
        """Forget the epoch in progress and the levels read (loading a state)."""
        self.epoch_counter.zero_()
        self.since_flush = 0
        self.pending_changed = None
        self.level_change = None
        self.version = -1
        self.armed = False

    def to(self, device: torch.device) -> None:
        """Move the device state to ``device`` (the weight moved)."""
        self.counter = self.counter.to(device)
        self.epoch_counter = self.epoch_counter.to(device)
        self.buffers = [b.to(device) for b in self.buffers]
        if self.level_change is not None:
            self.level_change = self.level_change.to(device)
        if self.pending_changed is not None:
            self.pending_changed = self.pending_changed.to(device)
        self.version = -1


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
            top = _top_level(module)
            largest = None if top is None else 2 * top
            dtype = _level_dtype(largest)

            def zeros(dtype: torch.dtype, w: Tensor = weight) -> Tensor:
                return torch.zeros(w.shape, dtype=dtype, device=w.device)

            self._layers.append(
                _Layer(
                    name=names[module],
                    module=module,
                    weights=weight.numel(),
                    levels=levels_format(module),
                    largest_change=largest,
                    counter=zeros(torch.int32),
                    epoch_counter=zeros(dtype),
                    buffers=[zeros(dtype), zeros(dtype)],
                    flush_every=_flush_every(dtype),
                )
            )
        if not self._layers:
            raise InputError("update statistics: the model has no weight layers")
        self._steps: list[int] = []
        self._epoch_steps = 0
        #: float32 scratch the levels are computed in, shared by the layers (the largest's size)
        self._scratch = torch.empty(0)

    def _scratch_for(self, layer: _Layer) -> Tensor:
        weight = layer.module.weight
        n = weight.numel()
        if self._scratch.numel() < n or self._scratch.device != weight.device:
            size = max(n, max(other.weights for other in self._layers))
            self._scratch = torch.empty(size, dtype=torch.float32, device=weight.device)
        return self._scratch[:n].view(weight.shape)

    @property
    def epochs(self) -> int:
        """Epochs recorded so far (measured or not)."""
        return len(self._steps)

    def before_step(self, model: nn.Module) -> None:
        """Take every layer's levels before the optimizer step (``model`` is the model the
        statistics were built for). Levels read after the last step are reused when the weight
        has not changed since (its version counter says so)."""
        self._check_model(model)
        for layer in self._layers:
            layer.levels_now(self._scratch_for(layer))
            layer.armed = True

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """Compare every layer's levels with those :meth:`before_step` took, and count, on the
        device (nothing is read back)."""
        self._check_model(model)
        for layer in self._layers:
            if not layer.armed:
                raise RuntimeError("UpdateStats.after_step without before_step")
            layer.armed = False
            before = layer.buffers[layer.current]
            if before.device != layer.module.weight.device:
                raise RuntimeError("UpdateStats: the model moved to another device mid-step")
            layer.current = 1 - layer.current
            layer.version = -1
            after = layer.levels_now(self._scratch_for(layer))
            # the levels before are not needed after this step: their buffer takes the
            # difference, and the next step's levels after
            delta = before.sub_(after)
            if layer.largest_change is None:  # float levels: any change (NaN: a change too)
                layer.epoch_counter.add_(delta.ne_(0.0))
            else:
                delta.abs_()  # integers 0..largest_change
                step_change = _exact_sum(delta, _FLOAT32_EXACT // layer.largest_change)
                if layer.level_change is None:
                    layer.level_change = step_change
                else:
                    layer.level_change.add_(step_change)
                layer.epoch_counter.add_(delta.clamp_max_(1))  # 1 where the level changed
            layer.since_flush += 1
            if layer.since_flush == layer.flush_every:
                layer.flush()
        self._epoch_steps += 1

    def end_epoch(self) -> None:
        """Close the epoch: read its totals from the device (once) and start the next."""
        for layer in self._layers:
            layer.flush()
            pending = layer.pending_changed
            layer.changed.append(0 if pending is None else int(pending))
            layer.pending_changed = None
            layer.total_changes = int(layer.counter.sum(dtype=torch.int64))
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
                layer.total_changes = layer.max_changes = 0
                layer.restart()
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
            layer.counter = counter.to(device=layer.counter.device, dtype=torch.int32)
            layer.changed, layer.level_changes = changed, level_changes
            layer.total_changes = int(layer.counter.sum(dtype=torch.int64))
            layer.max_changes = int(layer.counter.max())
            layer.restart()
        self._steps = list(steps)
        self._epoch_steps = 0
