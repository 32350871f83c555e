"""Feedback products: the forward is the usual one, the backward sends errors through ``B``.

For ``y = W x + b`` with upstream error ``e = dL/dy`` these functions return, in backward,
``dL/dx = Bᵀ e`` (BP would use ``W``), ``dL/dW = e xᵀ`` and ``dL/db = Σ e``; ``B`` gets no
gradient. With ``B = W`` they are exactly the BP gradients (tested bit for bit).

Direct feedback alignment has its own products (:func:`direct_linear`, :func:`direct_conv2d`):
their backward sends ``e_top D`` to the input, where ``e_top`` is the output layer's error of the
same forward pass, left in an :class:`ErrorSlot` by :func:`capture_error`.

Also here: drawing ``B`` (FA, IFA, IFA at an angle, KP), DFA's ``D``, the sign-concordant
magnitudes ``|R|``, the uSF feedback ``sign(W)·rms(W)``, and storing feedback at
``feedback_bits``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule
from hwsim.core.units import FLOAT_BITS


class _FeedbackLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor) -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        # Kept lean on purpose: this runs once per layer and step, and Python overhead here is
        # what separates FA's step time from BP's (benchmarks/bench_train.py).
        x, feedback = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if grad_out.dim() == 2:
            return (
                grad_out.mm(feedback) if need_x else None,
                grad_out.t().mm(x) if need_w else None,
                grad_out.sum(0) if ctx.has_bias and need_b else None,
                None,
            )
        flat = grad_out.reshape(-1, grad_out.shape[-1])
        return (
            grad_out.matmul(feedback) if need_x else None,
            flat.t().mm(x.reshape(-1, x.shape[-1])) if need_w else None,
            flat.sum(0) if ctx.has_bias and need_b else None,
            None,
        )


class _FeedbackConv2d(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        feedback: Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, feedback = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # The same kernel autograd uses for BP; passing B as the "weight" makes the input
        # gradient a transposed convolution by B while the weight gradient still uses x.
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            feedback.to(grad_out.dtype),
            [feedback.shape[0]] if has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            [need_x, need_w, has_bias and need_b],
        )
        return grad_x, grad_w, grad_b, None, None, None, None, None


class ErrorSlot:
    """Where the output layer's backward leaves ``e_top = dL/dlogits`` for one forward pass."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Tensor | None = None


class DirectFeedback:
    """What a model's DFA layers share: the :class:`ErrorSlot` of the forward pass under way.

    Every DFA layer's forward takes the current slot; the output layer's forward then opens a
    fresh one for the next pass. So each backward reads the ``e_top`` of its own forward pass,
    also when several forwards run before their backwards. Copies (``deepcopy``) start empty.
    """

    def __init__(self) -> None:
        self.slot = ErrorSlot()

    def __deepcopy__(self, memo: dict) -> DirectFeedback:
        return DirectFeedback()


class _CaptureError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, slot: ErrorSlot) -> Tensor:
        ctx.slot = slot
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        ctx.slot.error = grad_out
        return grad_out, None


def capture_error(y: Tensor, slot: ErrorSlot) -> Tensor:
    """Identity whose backward stores the error arriving at ``y`` in ``slot``."""
    return _CaptureError.apply(y, slot)


def _direct_input_grad(slot: ErrorSlot, direct: Tensor, x: Tensor) -> Tensor:
    error = slot.error
    if error is None:
        raise RuntimeError(
            "DFA: the output layer's backward has not run for this forward pass; the loss must "
            "be computed from the output of the last weight layer"
        )
    if error.shape[0] != x.shape[0] or direct.shape[1] * x.shape[0] != x.numel():
        raise RuntimeError(
            f"DFA: output error {list(error.shape)} and D {list(direct.shape)} do not fit this "
            f"layer's input {list(x.shape)}"
        )
    return error.to(direct.dtype).mm(direct).reshape(x.shape).to(x.dtype)


class _DirectLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: Tensor, weight: Tensor, bias: Tensor | None, direct: Tensor, slot: ErrorSlot
    ) -> Tensor:
        ctx.save_for_backward(x, direct)
        ctx.slot = slot
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, direct = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        flat = grad_out.reshape(-1, grad_out.shape[-1])
        return (
            _direct_input_grad(ctx.slot, direct, x) if need_x else None,
            flat.t().mm(x.reshape(-1, x.shape[-1])) if need_w else None,
            flat.sum(0) if ctx.has_bias and need_b else None,
            None,
            None,
        )


class _DirectConv2d(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        direct: Tensor,
        slot: ErrorSlot,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> Tensor:
        ctx.save_for_backward(x, weight, direct)
        ctx.slot = slot
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight, direct = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            weight,
            [weight.shape[0]] if has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            [False, need_w, has_bias and need_b],
        )
        grad_x = _direct_input_grad(ctx.slot, direct, x) if need_x else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def direct_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, direct: Tensor, slot: ErrorSlot
) -> Tensor:
    """``linear(x, weight, bias)`` whose backward sends ``e_top D`` (reshaped) to ``x``.

    ``direct`` is ``D`` (n_out × numel of one sample of ``x``); ``e_top`` is read from ``slot``
    (left there by the output layer's :func:`capture_error`). The weight gradient is the usual
    one, from the error arriving at this layer's output.
    """
    return _DirectLinear.apply(x, weight, bias, direct, slot)


def direct_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    direct: Tensor,
    slot: ErrorSlot,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> Tensor:
    """``conv2d`` whose backward sends ``e_top D`` reshaped to ``x``'s shape (C·H·W per sample)."""
    return _DirectConv2d.apply(x, weight, bias, direct, slot, stride, padding, dilation, groups)


def feedback_linear(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor) -> Tensor:
    """``linear(x, weight, bias)`` whose backward sends errors through ``feedback``."""
    return _FeedbackLinear.apply(x, weight, bias, feedback)


def feedback_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feedback: Tensor,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> Tensor:
    """``conv2d`` whose backward sends errors through the transposed convolution by ``feedback``."""
    return _FeedbackConv2d.apply(x, weight, bias, feedback, stride, padding, dilation, groups)


def angle_deg(a: Tensor, b: Tensor) -> float:
    """Angle in degrees between two tensors, flattened: ``arccos(<a,b> / (|a||b|))``."""
    a64, b64 = a.detach().double().flatten(), b.detach().double().flatten()
    denom = a64.norm() * b64.norm()
    if denom == 0:
        return float("nan")
    cos = torch.clamp(a64 @ b64 / denom, -1.0, 1.0)
    return math.degrees(math.acos(float(cos)))


def quantize_feedback(feedback: Tensor, bits: int) -> Tensor:
    """Store ``feedback`` at ``bits``: symmetric per-tensor integer grid, or sign for 1 bit.

    ``bits == 32`` keeps float. For ``bits >= 2`` the grid is ``scale · {-(2^(b-1)-1) … 2^(b-1)-1}``
    with ``scale = max|B| / (2^(b-1)-1)``; for 1 bit, ``sign(B) · mean|B|`` (zeros map to +).
    """
    if bits == FLOAT_BITS:
        return feedback
    if not 1 <= bits <= 16:
        raise InputError(f"feedback_bits must be 32 (float) or 1..16, got {bits}")
    if bits == 1:
        sign = torch.where(feedback >= 0, 1.0, -1.0).to(feedback.dtype)
        return sign * feedback.abs().mean()
    levels = 2 ** (bits - 1) - 1
    scale = feedback.abs().max() / levels
    if scale == 0:
        return feedback.clone()
    return torch.round(feedback / scale).clamp(-levels, levels) * scale


def weight_sign(weight: Tensor) -> Tensor:
    """``sign(W)`` with ``sign(0) = +1``, in ``W``'s dtype (the sign-concordant rules' 1 bit)."""
    return torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype)


def rms(weight: Tensor) -> Tensor:
    """Root mean square of ``weight`` as ``max|W|·sqrt(mean((W/max|W|)²))``: exactly ``c`` when
    every element is ``±c``, and 0 for an all-zero tensor."""
    peak = weight.detach().abs().max()
    if peak == 0:
        return peak
    return peak * (weight.detach() / peak).pow(2).mean().sqrt()


def uniform_sign_feedback(weight: Tensor) -> Tensor:
    """uSF's ``B = sign(W) · rms(W)`` for the weight ``W`` the forward uses (nothing stored)."""
    w = weight.detach()
    return weight_sign(w) * rms(w)


def feedback_sigma(weight: Tensor, backward_gain: float | None) -> float:
    """σ of random feedback for ``weight`` (``W₀``): ``backward_gain / sqrt(fan_in)``, or the RMS
    of ``W₀`` when ``backward_gain`` is None ("at the scale of W")."""
    w = weight.detach().double()
    if backward_gain:
        return backward_gain / math.sqrt(w[0].numel())
    return float(w.pow(2).mean().sqrt())


def draw_magnitudes(
    shape: torch.Size | tuple[int, ...],
    sigma: float,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    feedback_bits: int = FLOAT_BITS,
) -> Tensor:
    """brSF/frSF's ``|R|``: ``R ~ N(0, σ²)`` elementwise, magnitudes stored at ``feedback_bits``."""
    r = torch.randn(shape, generator=generator, dtype=torch.float64) * sigma
    return quantize_feedback(r.abs().to(dtype), feedback_bits)


def draw_direct_feedback(
    n_out: int,
    n_in: int,
    weight: Tensor,
    *,
    generator: torch.Generator,
    backward_gain: float | None = None,
    feedback_bits: int = FLOAT_BITS,
) -> Tensor:
    """DFA's ``D`` for a layer with ``n_in`` input elements per sample, under ``n_out`` outputs.

    ``D ~ N(0, σ²)`` elementwise, shape ``(n_out, n_in)``, with ``σ = backward_gain/sqrt(n_out)``
    or, when ``backward_gain`` is None, the RMS of the layer's ``W₀`` (``weight``); stored at
    ``feedback_bits``.
    """
    sigma = backward_gain / math.sqrt(n_out) if backward_gain else feedback_sigma(weight, None)
    d = torch.randn((n_out, n_in), generator=generator, dtype=torch.float64) * sigma
    # Drawn on the CPU generator (the same numbers on every device), then moved to W's.
    return quantize_feedback(d.to(weight.device, weight.dtype), feedback_bits)


def draw_feedback(
    weight: Tensor,
    rule: Rule,
    *,
    generator: torch.Generator,
    backward_gain: float | None = None,
    feedback_bits: int = FLOAT_BITS,
) -> Tensor:
    """Draw the feedback matrix ``B`` for ``weight`` (the layer's initial ``W₀``).

    - ``fa``, ``kp`` (its ``B₀``) and DFA's output layer: ``B`` drawn independently, N(0, σ²)
      elementwise.
    - ``frsf``, ``brsf``: the magnitudes ``|R|`` with ``R`` drawn like FA's ``B``.
    - ``ifa`` (θ = 0): ``B = W₀`` (a copy; scaled to σ when ``backward_gain`` is set).
    - ``ifa:θ``: ``B = s·(cos θ · Ŵ₀ + sin θ · R̂⊥)`` with ``R`` drawn like ``B`` and ``R⊥`` its
      part orthogonal to ``W₀``, so that ``angle(W₀, B) = θ`` exactly (docs/learning.md: the
      paper draws ``B`` and places ``W₀``; here the model keeps its forward init and ``B`` is
      placed around it; the pair has the same geometry).

    ``σ = backward_gain / sqrt(fan_in)`` (1 = LeCun, √2 = He) or, when ``backward_gain`` is None,
    the RMS of ``W₀``; ``s = σ · sqrt(numel)``. ``B`` is then stored at ``feedback_bits``.
    """
    if not rule.stores_feedback:
        raise ValueError(f"rule {rule.spec!r} stores no feedback matrix")
    w = weight.detach().double()
    sigma = feedback_sigma(weight, backward_gain)
    if rule.kind in ("frsf", "brsf"):
        return draw_magnitudes(
            w.shape, sigma, generator=generator, dtype=weight.dtype, feedback_bits=feedback_bits
        ).to(weight.device)
    # Random draws come from the CPU generator (the same numbers on every device), then move.
    if rule.kind in ("fa", "kp", "dfa"):
        r = torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w.device)
        feedback = r * sigma
    elif not rule.angle_deg and backward_gain is None:
        feedback = w.clone()
    else:
        theta = math.radians(rule.angle_deg or 0.0)
        w_hat = w / w.norm()
        r = torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w.device)
        r_perp = r - (r.flatten() @ w_hat.flatten()) * w_hat
        direction = math.cos(theta) * w_hat + math.sin(theta) * r_perp / r_perp.norm()
        feedback = sigma * math.sqrt(w.numel()) * direction
    return quantize_feedback(feedback.to(weight.dtype), feedback_bits)
