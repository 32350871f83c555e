"""Fixed-feedback products: the forward is the usual one, the backward sends errors through ``B``.

For ``y = W x + b`` with upstream error ``e = dL/dy`` these functions return, in backward,
``dL/dx = Bᵀ e`` (BP would use ``W``), ``dL/dW = e xᵀ`` and ``dL/db = Σ e``; ``B`` gets no
gradient. With ``B = W`` they are exactly the BP gradients (tested bit for bit).

Also here: drawing ``B`` (FA, IFA, IFA at an angle) and storing it at ``feedback_bits``.
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


def draw_feedback(
    weight: Tensor,
    rule: Rule,
    *,
    generator: torch.Generator,
    backward_gain: float | None = None,
    feedback_bits: int = FLOAT_BITS,
) -> Tensor:
    """Draw the fixed feedback matrix ``B`` for ``weight`` (the layer's initial ``W₀``).

    - ``fa``: ``B`` drawn independently, N(0, σ²) elementwise.
    - ``ifa`` (θ = 0): ``B = W₀`` (a copy; scaled to σ when ``backward_gain`` is set).
    - ``ifa:θ``: ``B = s·(cos θ · Ŵ₀ + sin θ · R̂⊥)`` with ``R`` drawn like ``B`` and ``R⊥`` its
      part orthogonal to ``W₀``, so that ``angle(W₀, B) = θ`` exactly (docs/learning.md: the
      paper draws ``B`` and places ``W₀``; here the model keeps its forward init and ``B`` is
      placed around it; the pair has the same geometry).

    ``σ = backward_gain / sqrt(fan_in)`` (1 = LeCun, √2 = He) or, when ``backward_gain`` is None,
    the RMS of ``W₀``; ``s = σ · sqrt(numel)``. ``B`` is then stored at ``feedback_bits``.
    """
    if not rule.uses_feedback_weights:
        raise ValueError("BP has no feedback matrix")
    w = weight.detach().double()
    fan_in = w[0].numel()
    sigma = backward_gain / math.sqrt(fan_in) if backward_gain else float(w.pow(2).mean().sqrt())
    if rule.kind == "fa":
        r = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        feedback = r * sigma
    elif not rule.angle_deg and backward_gain is None:
        feedback = w.clone()
    else:
        theta = math.radians(rule.angle_deg or 0.0)
        w_hat = w / w.norm()
        r = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        r_perp = r - (r.flatten() @ w_hat.flatten()) * w_hat
        direction = math.cos(theta) * w_hat + math.sin(theta) * r_perp / r_perp.norm()
        feedback = sigma * math.sqrt(w.numel()) * direction
    return quantize_feedback(feedback.to(weight.dtype), feedback_bits)
