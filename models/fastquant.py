"""Brevitas' quantizers computed directly, without brevitas' per-call module machinery.

A quantized training step used to spend most of its time in brevitas' Python layers (proxies,
injected modules, ``QuantTensor`` wrappers, Python ``autograd.Function`` objects: about 16
quantizer calls per layer and step), not in arithmetic. This module computes the same quantizers
as a handful of tensor operations, reading **brevitas' own parameters, buffers and constants**
(nothing is copied or stored twice), and gives **bit-identical** forward values and gradients:

- :func:`weight_quant` — brevitas' per-tensor ``RescalingIntQuant`` with a detached ``max|W|``
  statistic (``hwsim.models.quant.WeightQuantSTE``): ``scale = clamp_min(max|W|, m) / t`` and
  ``W_q = (clamp(round(W / scale + 0)) - 0) · scale`` with a straight-through gradient.
- :func:`act_quant` — brevitas' activation quantizer with ``ParameterFromRuntimeStatsScaling``
  (``QuantReLU`` / ``QuantIdentity``): percentile statistics with gradient for the first
  ``collect_stats_steps`` training calls (the running ``buffer`` and ``counter`` updated exactly
  as brevitas does), then the learned ``value`` initialised from them, in training and eval mode.

Brevitas' graph of small nodes is replaced by a few ``autograd.Function`` nodes whose forward
values are exactly brevitas' (the same operations in the same order: division by the scale,
never multiplication by its reciprocal; ``+ zero_point`` before ``torch.round``, round half to
even; brevitas' clamp) and whose backward computes, with autograd's own formulas, the gradient
bits brevitas' graph computes (``MulBackward`` ``g · s``, ``DivBackward`` ``g / s`` and
``-g · ((x / s) / s)``, reductions as ``sum``, the straight-through estimators' identities, the
clamp's ``+0`` where it clamps). Identities used are stated where used (e.g. brevitas'
``sign(x) · clamp_min(|x|, m)`` on a statistic that is ``>= 0`` is ``clamp_min(x, m)``).
``tests/learning/test_fast_quant.py`` holds the two paths to ``torch.equal``.

Anything this module does not cover (another quantizer type, a configuration brevitas computes
differently, export or tracing mode, ``QuantTensor`` inputs, ...) makes the caller use brevitas'
own path: ``weight_quant`` / ``act_quant`` return ``None`` there. The whole fast path can be
switched off (brevitas' reference path everywhere) with :func:`reference_quantizers`,
:func:`set_fast_quantizers` or the environment variable ``HWSIM_REFERENCE_QUANT=1``.
Exactness holds for finite inputs (a non-finite activation or weight gives NaN/inf either way,
not necessarily the same bits).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from brevitas.core.bit_width import BitWidthConst
from brevitas.core.function_wrapper import Identity, OverTensorView, RoundSte, TensorClamp
from brevitas.core.function_wrapper.misc import Abs
from brevitas.core.function_wrapper.ops_ste import ScalarSignedClampMinSte, TensorClampSte
from brevitas.core.quant import IntQuant, RescalingIntQuant
from brevitas.core.quant.delay import _NoDelay
from brevitas.core.restrict_val import FloatRestrictValue
from brevitas.core.scaling import IntScaling, ParameterFromRuntimeStatsScaling
from brevitas.core.scaling.runtime import StatsFromParameterScaling
from brevitas.core.stats import AbsPercentile
from brevitas.core.stats.view_wrapper import _ViewParameter
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.proxy import ActQuantProxyFromInjector, WeightQuantProxyFromInjector
from brevitas.quant_tensor import QuantTensor
from torch import Tensor, nn

#: Environment variable that, set to anything but ``0`` or empty, selects brevitas' own path.
REFERENCE_ENV = "HWSIM_REFERENCE_QUANT"

_fast = os.environ.get(REFERENCE_ENV, "") in ("", "0")

#: Below this many elements ``torch.kthvalue`` itself is as fast; the sample's length.
_KTH_DIRECT, _KTH_SAMPLE = 4096, 4096

#: After a percentile search ends in ties, this many calls use ``torch.kthvalue`` directly
#: (only speed depends on it: both give the same value and gradient).
_SKIP_AFTER_TIES = 20

#: Smallest clamp of a scale for which the weight's integer clamp is provably a no-op
#: (the scale is then a normal float, so ``|W / scale| <= threshold·(1 + 2⁻²²)``).
_NORMAL_SCALE_MIN = 1e-30


def fast_quantizers_enabled() -> bool:
    """Whether the fast path is on (the default; off with ``HWSIM_REFERENCE_QUANT=1``)."""
    return _fast


def set_fast_quantizers(enabled: bool) -> None:
    """Switch the fast path on or off for the whole process (off: brevitas' own path)."""
    global _fast
    _fast = bool(enabled)


@contextmanager
def reference_quantizers() -> Iterator[None]:
    """Run the enclosed code with brevitas' reference quantizer path, then restore the switch."""
    global _fast
    previous = _fast
    _fast = False
    try:
        yield
    finally:
        _fast = previous


def _tracing() -> bool:
    return bool(torch._C._get_tracing_state()) or bool(torch.compiler.is_compiling())


def _clamp_min_of(module: nn.Module) -> tuple[bool, float | None]:
    """``(supported, min)`` of brevitas' ``_ClampValue``/``_RestrictClampValue`` clamp module."""
    if isinstance(module, Identity):
        return True, None
    if type(module) is ScalarSignedClampMinSte:
        return True, float(module.min_val)
    return False, None


def _is_abs_restrict(module: nn.Module) -> bool:
    return type(module) is FloatRestrictValue and type(module.apply_abs) is Abs


class _LearnedScale(torch.autograd.Function):
    """Training-mode learned scale ``sign·clamp_min(abs_bsg(|v|), m) / t`` as one node: forward
    ``clamp_min(|v|, m) / t``; backward brevitas' chain ``DivBackward`` (``g / t``), the clamp's
    identity (``1 · g``, ``binary_sign(|v|) · g``: exact), ``AbsBackward`` (``g · sgn(v)``)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, value: Tensor, threshold: Tensor, min_val: float | None
    ) -> Tensor:
        ctx.save_for_backward(value, threshold)
        a = torch.abs(value)
        if min_val is not None:
            a = torch.clamp_min(a, min_val)
        return a / threshold

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        value, threshold = ctx.saved_tensors
        return (grad / threshold) * torch.sgn(value), None, None


class _CollectedScale(torch.autograd.Function):
    """Collection-phase scale ``clamp(stats + 0·v) / t`` as one node: forward as brevitas
    (``stats + 0.0 * value``, the clamp, ``/ t``); backward ``g / t`` to ``stats`` (add, the
    clamp's identity) and ``(g / t) · 0.0`` to ``value`` (``MulBackward`` by the scalar 0)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, stats: Tensor, value: Tensor, threshold: Tensor, min_val: float | None
    ) -> Tensor:
        ctx.save_for_backward(threshold)
        clamped = stats + 0.0 * value
        if min_val is not None:
            clamped = torch.clamp_min(clamped, min_val)
        ctx.mark_non_differentiable(clamped)
        return clamped / threshold, clamped

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: Tensor, _: Tensor | None
    ) -> tuple[Tensor, Tensor, None, None]:
        (threshold,) = ctx.saved_tensors
        g = grad / threshold
        return g, g * 0.0, None, None


def _clamp_ste(x: Tensor, min_val: float | None) -> Tensor:
    """Brevitas' ``ScalarSignedClampMinSte`` on ``x >= 0`` (a statistic or ``|value|``):
    ``where(x >= 0, 1, -1) · clamp_min(|x|, m)`` is ``clamp_min(x, m)`` there, and its gradient
    ``binary_sign(x) · (g · 1)`` is ``g``; written as ``c - (x.detach() - x)``."""
    if min_val is None:
        return x
    return torch.clamp_min(x.detach(), min_val) - (x.detach() - x)


@dataclass
class _IntPlan:
    """Brevitas' constants of one ``RescalingIntQuant``, on one device (read from brevitas)."""

    source: nn.Module = field(repr=False)
    device: torch.device
    threshold: Tensor  # the int threshold after brevitas' threshold restriction
    zero_point: Tensor
    min_int: Tensor
    max_int: Tensor
    ste_clamp: bool  # TensorClampSte (weights) rather than TensorClamp (activations)


def _int_plan(tensor_quant: nn.Module, device: torch.device) -> _IntPlan | None:
    """Read the constants of ``tensor_quant`` if it is brevitas' plain integer quantizer."""
    if type(tensor_quant) is not RescalingIntQuant or tensor_quant.observer_only:
        return None
    iq = tensor_quant.int_quant
    ok = (
        type(iq) is IntQuant
        and type(iq.float_to_int_impl) is RoundSte
        and type(iq.tensor_clamp_impl) in (TensorClamp, TensorClampSte)
        and type(iq.input_view_impl) is Identity
        and type(iq.delay_wrapper.delay_impl) is _NoDelay
        and type(tensor_quant.int_scaling_impl) is IntScaling
        and type(tensor_quant.zero_point_impl) is ZeroZeroPoint
        and type(tensor_quant.msb_clamp_bit_width_impl) is BitWidthConst
    )
    if not ok:
        return None
    with torch.no_grad():
        bit_width = tensor_quant.msb_clamp_bit_width_impl()
        threshold = tensor_quant.int_scaling_impl(bit_width)
        zero_point = tensor_quant.zero_point_impl.zero_point()
        min_int, max_int = iq.min_int(bit_width), iq.max_int(bit_width)
    zero = threshold.numel() == 1 and zero_point.numel() == 1 and float(zero_point) == 0.0
    zero = zero and float(max_int) >= 1  # a clamp bound that is no zero (see _ActQuant)
    if not zero or math.copysign(1.0, float(zero_point)) < 0:  # +0 only: then v - zp = v
        return None
    return _IntPlan(
        source=tensor_quant,
        device=device,
        threshold=threshold.to(device),
        zero_point=zero_point.to(device),
        min_int=min_int.to(device),
        max_int=max_int.to(device),
        ste_clamp=type(iq.tensor_clamp_impl) is TensorClampSte,
    )


class _WeightQuant(torch.autograd.Function):
    """A weight quantizer whose scale has no gradient (``DetachedAbsMax``): forward
    ``round(w / s + zp) · s`` (clamp proved a no-op, or done), backward brevitas' chain
    ``MulBackward`` then ``DivBackward``: ``(g · s) / s``, computed as such."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, w: Tensor, scale: Tensor, plan: _IntPlan, clamp: bool
    ) -> Tensor:
        ctx.save_for_backward(scale)
        return _weight_value(w, scale, plan, clamp)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: Tensor
    ) -> tuple[Tensor, None, None, None]:
        (scale,) = ctx.saved_tensors
        return (grad * scale).div_(scale), None, None, None


def _weight_value(w: Tensor, scale: Tensor, plan: _IntPlan, clamp: bool) -> Tensor:
    q = torch.div(w, scale).add_(plan.zero_point).round_()
    if clamp:
        q = torch.where(q > plan.max_int, plan.max_int.type_as(q), q)
        q = torch.where(q < plan.min_int, plan.min_int.type_as(q), q)
    return q.mul_(scale)


class _ActQuant(torch.autograd.Function):
    """Brevitas' ``IntQuant`` with a scale that carries a gradient, as one autograd node:
    forward ``(clamp(round(x / s + zp)) - zp) · s``; backward the gradients brevitas' graph
    computes, with autograd's own formulas: ``MulBackward`` (``g · s`` to the integer tensor
    ``q``, ``sum(g · q)`` to ``s``), ``TensorClamp``'s ``where`` (``+0`` where clamped),
    ``RoundSte`` and the ``± zp`` (identities), ``DivBackward`` (``g_y / s`` to ``x`` and
    ``sum(-g_y · ((x / s) / s))`` to ``s``); ``s`` sums its two terms (order-free)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, scale: Tensor, plan: _IntPlan, lower_bound: bool
    ) -> Tensor:
        q = torch.div(x, scale).add_(plan.zero_point).round_()
        blocked = q > plan.max_int
        q.clamp_max_(plan.max_int)  # = where(q > max, max, q): the bound max >= 1 is no zero
        if lower_bound:
            lower = q < plan.min_int
            q.masked_fill_(lower, plan.min_int)
            blocked.logical_or_(lower)
        ctx.save_for_backward(x, scale, q, blocked)
        return q * scale

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, scale, q, blocked = ctx.saved_tensors
        grad_x = grad_scale = None
        grad_y = (grad * scale).masked_fill_(blocked, 0.0)
        if ctx.needs_input_grad[0]:
            grad_x = grad_y / scale
        if ctx.needs_input_grad[1]:
            from_mul = (grad * q).sum()
            # autograd's -g_y · ((x / s) / s), as -((x / s) / s · g_y): the same bits
            from_div = torch.div(x, scale).div_(scale).mul_(grad_y).neg_().sum()
            grad_scale = from_mul + from_div
        return grad_x, grad_scale, None, None


def _int_quant(x: Tensor, scale: Tensor, plan: _IntPlan, *, lower_bound: bool = True) -> Tensor:
    """Brevitas' ``IntQuant`` (activations): :class:`_ActQuant`, or its forward without
    gradient. ``lower_bound`` False skips the clamp at ``min_int`` where the caller proved it
    a no-op."""
    if torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad):
        out: Tensor = _ActQuant.apply(x, scale, plan, lower_bound)
        return out
    return _round_clamp(x / scale, plan) * scale


def _round_clamp(y: Tensor, plan: _IntPlan) -> Tensor:
    q = torch.round(y + plan.zero_point)
    q = torch.where(q > plan.max_int, plan.max_int.type_as(q), q)
    return torch.where(q < plan.min_int, plan.min_int.type_as(q), q)


def _percentile_stat(a: Tensor, k: int, plan: _ActPlan | None = None) -> Tensor:
    """``torch.kthvalue(a, k)[0]`` of the 1-D ``a``, with its gradient (all of it to the one
    index ``kthvalue`` returns), found faster: the value is the ``n - k + 1``-th largest, so it
    is the maximum or lies among the few elements above a threshold read off a strided sample.
    Where that value is not unique in ``a`` (``kthvalue``'s index would then be its own choice)
    or the sample misleads, the answer is ``torch.kthvalue`` itself."""
    n = a.numel()
    above = n - k + 1  # the value is the above-th largest
    at = None
    if plan is not None and plan.skip_search > 0:  # ties last time: likely again (same data)
        plan.skip_search -= 1
    elif n >= _KTH_DIRECT and 1 <= above <= n // 64:
        with torch.no_grad():
            at = _unique_kth_index(a.detach(), above)
        if at is None and plan is not None:
            plan.skip_search = _SKIP_AFTER_TIES
    if at is None:
        return torch.kthvalue(a, k)[0]
    return a[at]


def _unique_kth_index(d: Tensor, above: int) -> int | None:
    """The index of the ``above``-th largest element of ``d`` if its value occurs once."""
    n = d.numel()
    if above == 1:
        value = d.amax()
    else:
        stride = n // _KTH_SAMPLE
        sample = d[::stride]
        m = min(sample.numel(), -(-above // stride) + 2)
        threshold = torch.kthvalue(sample, sample.numel() - m + 1)[0]
        candidates = d[d >= threshold]
        count = candidates.numel()
        if count < above or count > n // 8:
            return None
        value = torch.kthvalue(candidates, count - above + 1)[0]
    index = torch.nonzero(d == value)
    return int(index) if index.shape[0] == 1 else None


# --- weights ------------------------------------------------------------------------------


@dataclass
class _WeightPlan:
    int_plan: _IntPlan
    stats_min: float | None  # _StatsScaling.clamp_scaling
    scale_min: float | None  # _StatsScaling.restrict_clamp_scaling
    skip_clamp: bool
    floor: float | None = None


def _weight_plan(layer: nn.Module) -> _WeightPlan | None:
    from hwsim.models.quant import (
        DetachedAbsMax,  # hwsim.models.quant builds its layers on this module
    )

    proxy = layer.weight_quant
    if type(proxy) is not WeightQuantProxyFromInjector:
        return None
    tensor_quant = proxy.tensor_quant
    int_plan = _int_plan(tensor_quant, layer.weight.device)
    if int_plan is None or not int_plan.ste_clamp:
        return None
    scaling = tensor_quant.scaling_impl
    if type(scaling) is not StatsFromParameterScaling:
        return None
    pls = scaling.parameter_list_stats
    stats = pls.stats
    if (
        pls.extra_tracked_params_list is not None
        or type(pls.first_tracked_param) is not _ViewParameter
        or type(pls.first_tracked_param.view_shape_impl) is not OverTensorView
        or type(stats.stats_impl) is not DetachedAbsMax  # brevitas' AbsMax has a scale gradient
        or stats.stats_impl.stats_reduce_dim is not None
        or tuple(stats.stats_output_shape) != ()
    ):
        return None
    ss = scaling.stats_scaling_impl
    ok_stats, stats_min = _clamp_min_of(ss.clamp_scaling.clamp_min_ste)
    rcs = ss.restrict_clamp_scaling
    ok_scale, scale_min = _clamp_min_of(rcs.clamp_ste)
    rcst = ss.restrict_clamp_scale_threshold
    ok = (
        ok_stats
        and ok_scale
        and type(ss.affine_rescaling) is Identity
        and _is_abs_restrict(rcs.restrict_value_impl)
        and type(ss.restrict_scaling_pre) is Abs
        and type(ss.restrict_threshold_pre) is Abs
        and _is_abs_restrict(ss.restrict_clamp_threshold.restrict_value_impl)
        and type(ss.restrict_clamp_threshold.clamp_ste) is Identity
        and type(rcst.restrict_value_impl) is Identity
        and type(rcst.clamp_ste) is Identity
    )
    if not ok:
        return None
    with torch.no_grad():  # brevitas: |restrict(|t|)|, t = 2^(b-1) - 1 (> 0)
        int_plan.threshold = ss.restrict_clamp_threshold(
            ss.restrict_threshold_pre(int_plan.threshold)
        )
    # max|W| / t rounds to at most t when the scale is a normal float (see _int_quant).
    mins = [m for m in (stats_min, scale_min) if m is not None]
    symmetric = bool(
        torch.equal(int_plan.threshold, int_plan.max_int.to(int_plan.threshold))
        and torch.equal(-int_plan.min_int, int_plan.max_int)
    )
    skip_clamp = symmetric and bool(mins) and max(mins) >= _NORMAL_SCALE_MIN
    return _WeightPlan(int_plan, stats_min, scale_min, skip_clamp, max(mins) if mins else None)


def _cached_plan(
    module: nn.Module, key: str, source: nn.Module, device: Any, build: Callable[[], Any]
) -> Any:
    """The plan ``build()`` made for ``source`` on ``device``, kept in ``module.__dict__`` (not
    a parameter or buffer: the ``state_dict`` is unchanged); built again when either changes."""
    cached = module.__dict__.get(key)
    if cached is None or cached[0] is not source or cached[1] != device:
        cached = (source, device, build())
        module.__dict__[key] = cached
    return cached[2]


def _weight_ready(layer: nn.Module) -> _WeightPlan | None:
    if not _fast or _tracing() or layer.weight.dtype != torch.float32:
        return None
    proxy = layer.weight_quant
    if (
        not proxy.is_quant_enabled
        or proxy.export_mode
        or proxy.skip_create_quant_tensor
        or proxy.cache_inference_quant_weight
    ):
        return None
    return _cached_plan(
        layer,
        "_fastquant_weight_plan",
        proxy.tensor_quant,
        layer.weight.device,
        lambda: _weight_plan(layer),
    )


def weight_quant(layer: nn.Module) -> Tensor | None:
    """Brevitas' quantized weight of ``layer`` (the value of ``layer.quant_weight()``), with the
    same gradient to ``layer.weight``; ``None`` where brevitas' own path must compute it."""
    plan = _weight_ready(layer)
    if plan is None:
        return None
    w = layer.weight
    scale = _weight_scale(w, plan)
    clamp = not plan.skip_clamp
    if torch.is_grad_enabled() and w.requires_grad:
        out: Tensor = _WeightQuant.apply(w, scale, plan.int_plan, clamp)
        return out
    with torch.no_grad():
        return _weight_value(w, scale, plan.int_plan, clamp)


def weight_int(layer: nn.Module, out: Tensor | None = None) -> Tensor | None:
    """The integer levels of ``layer``'s quantized weight, as float32 integers: what brevitas'
    ``layer.quant_weight().int()`` gives (``clamp(round(W / scale + zero_point))``, the scale
    from ``max|W|`` as the forward computes it), without gradient; ``None`` where brevitas' own
    path must compute it (as :func:`weight_quant`). ``out``: a float32 tensor of the weight's
    shape to write them into (and return), instead of a new one."""
    plan = _weight_ready(layer)
    if plan is None:
        return None
    with torch.no_grad():
        w = layer.weight
        scale = _weight_scale(w, plan)
        ip = plan.int_plan
        q = torch.div(w, scale, out=out) if out is not None else torch.div(w, scale)
        # brevitas adds the zero point before rounding; a plan's zero point is +0 (_int_plan),
        # which changes only the sign of a zero, never a level: not added
        q.round_()
        if not plan.skip_clamp:
            q.clamp_(ip.min_int.type_as(q), ip.max_int.type_as(q))
        return q


def _weight_scale(w: Tensor, plan: _WeightPlan) -> Tensor:
    """The weight quantizer's scale of ``w`` (no gradient: the statistic is detached)."""
    with torch.no_grad():
        # brevitas: DetachedAbsMax, view(()), sign·clamp_min(|s|, m), |.|, |.|, sign·clamp_min,
        # / threshold; on a statistic >= 0 every sign is 1 and every |.| the identity.
        if plan.floor is not None:  # clamp_min(clamp_min(s, a), b) = clamp_min(s, max(a, b))
            # max|W| = max(-min W, max W) in one pass; only a zero maximum could differ (in
            # its sign), and the clamp turns it into the floor either way.
            low, high = torch.aminmax(w.detach())
            stats = torch.clamp_min(torch.maximum(-low, high), plan.floor)
        else:
            stats = torch.max(torch.abs(w.detach()))
        scale: Tensor = stats / plan.int_plan.threshold
    return scale


# --- activations --------------------------------------------------------------------------


@dataclass
class _ActPlan:
    int_plan: _IntPlan
    relu: bool
    q: float
    min_val: float | None
    momentum: float | None
    #: relu(x) / s + 0 >= +0 for s > 0 (s >= the clamp's min): nothing is below min_int = 0
    nonnegative: bool = False
    #: calls left that go straight to ``torch.kthvalue`` (the search found ties recently)
    skip_search: int = 0


def _act_plan(module: nn.Module, proxy: nn.Module) -> _ActPlan | None:
    fused = proxy.fused_activation_quant_proxy
    act = fused.activation_impl
    if type(act) is nn.ReLU and not act.inplace:
        relu = True
    elif type(act) in (Identity, nn.Identity):
        relu = False
    else:
        return None
    tensor_quant = fused.tensor_quant
    scaling = tensor_quant.scaling_impl
    if type(scaling) is not ParameterFromRuntimeStatsScaling:
        return None
    int_plan = _int_plan(tensor_quant, scaling.value.device)
    if int_plan is None or int_plan.ste_clamp:
        return None
    stats_impl = scaling.stats.stats_impl
    ok_clamp, min_val = _clamp_min_of(scaling.clamp_scaling.clamp_min_ste)
    ok = (
        ok_clamp
        and type(scaling.stats_input_view_shape_impl) is OverTensorView
        and type(stats_impl) is AbsPercentile
        and stats_impl.stats_reduce_dim is None
        and tuple(scaling.stats.stats_output_shape) == ()
        and tuple(scaling.value.shape) == ()
        and _is_abs_restrict(scaling.restrict_scaling.restrict_value_impl)
        and _is_abs_restrict(scaling.restrict_threshold.restrict_value_impl)
        and type(scaling.restrict_scale_threshold.restrict_value_impl) is Identity
        and type(scaling.restrict_scaling_pre) is Abs
        and type(scaling.restrict_threshold_pre) is Abs
        and type(scaling.restrict_inplace_preprocess).__name__ == "InplaceAbs"
    )
    if not ok:
        return None
    with torch.no_grad():  # brevitas: restrict_threshold(restrict_threshold_pre(t)) = ||t||
        int_plan.threshold = scaling.restrict_threshold(
            scaling.restrict_threshold_pre(int_plan.threshold)
        )
    nonnegative = relu and min_val is not None and min_val > 0 and float(int_plan.min_int) == 0
    return _ActPlan(int_plan, relu, float(stats_impl.q), min_val, scaling.momentum, nonnegative)


def _act_scale(scaling: Any, x: Tensor, plan: _ActPlan) -> Tensor:
    """``ParameterFromRuntimeStatsScaling.forward(x, threshold)``, with its state updates."""
    threshold = plan.int_plan.threshold
    if scaling.training:
        collect = scaling.collect_stats_steps
        if scaling.counter < collect:
            flat = x.reshape(-1)  # OverTensorView
            k = math.floor(0.01 * plan.q * flat.numel() + 0.5)  # brevitas' k, same float ops
            stats = _percentile_stat(flat.abs().view(-1), k, plan).view(())
            # brevitas: stats + 0·value (its DDP workaround), clamp, / threshold
            scale, clamped = _CollectedScale.apply(stats, scaling.value, threshold, plan.min_val)
            new_counter = scaling.counter + 1
            with torch.no_grad():
                if scaling.counter == 0:
                    scaling.buffer.mul_(clamped.detach())
                elif plan.momentum is None:
                    scaling.buffer.mul_(scaling.counter / new_counter)
                    scaling.buffer.add_(clamped.detach() / new_counter)
                else:
                    scaling.buffer.mul_(1 - plan.momentum)
                    scaling.buffer.add_(plan.momentum * clamped.detach())
            scaling.counter = new_counter
            return scale
        if scaling.counter == collect:
            scaling.init_scale()  # brevitas' own in-place initialisation from the buffer
        out: Tensor = _LearnedScale.apply(scaling.value, threshold, plan.min_val)
        return out
    if scaling.counter <= scaling.collect_stats_steps:
        out = torch.abs(scaling.buffer)
    else:
        out = scaling.value
    out = torch.abs(out) / threshold
    return _clamp_ste(out, plan.min_val)


def act_quant(module: nn.Module, x: Tensor) -> Tensor | None:
    """Brevitas' ``QuantReLU`` / ``QuantIdentity`` output for ``x`` (a plain tensor), with the
    same gradients and the same statistics-collection state updates; ``None`` where brevitas'
    own path must compute it (nothing has been changed then)."""
    if not _fast or isinstance(x, QuantTensor) or _tracing() or x.dtype != torch.float32:
        return None
    if module.return_quant_tensor or module.input_quant.is_quant_enabled:
        return None
    proxy = module.act_quant
    if (
        type(proxy) is not ActQuantProxyFromInjector
        or proxy.fused_activation_quant_proxy is None
        or not proxy.is_quant_enabled
        or proxy.export_mode
        or proxy.cache_inference_quant_act
    ):
        return None
    tensor_quant = proxy.fused_activation_quant_proxy.tensor_quant
    scaling = tensor_quant.scaling_impl
    plan = _cached_plan(
        module,
        "_fastquant_act_plan",
        tensor_quant,
        getattr(getattr(scaling, "value", None), "device", None),
        lambda: _act_plan(module, proxy),
    )
    if plan is None or scaling.local_loss_mode or x.device != plan.int_plan.device:
        return None
    if plan.relu:
        x = torch.relu(x)
    scale = _act_scale(scaling, x, plan)
    return _int_quant(x, scale, plan.int_plan, lower_bound=not plan.nonnegative)
