"""Layers trained by a feedback rule (every rule but BP), float and brevitas-quantized.

Each class subclasses the layer it replaces and changes one thing: the product's backward.
Brevitas layers are overridden at ``inner_forward_impl``, so quantization stays brevitas' own.
``use_true_gradient`` switches a layer to ordinary autograd (the BP view used by analyses).

What the backward sends errors through, per rule (docs/learning.md has the formulas):

- ``fa``, ``ifa``, ``kp``: the buffer ``feedback_weight`` (``B``, ``W``'s shape); KP's is
  updated by :func:`hwsim.models.convert.feedback_step`, the others never change.
- ``usf``: ``sign(W)·rms(W)`` of the weight this forward uses; nothing is stored.
- ``frsf``, ``brsf``: ``|R| ∘ sign(W)``, ``|R|`` in ``feedback_weight``; brSF draws a new ``R``
  at every forward in training mode from the generator state kept in ``feedback_rng_state``.
- ``dfa``: the output layer (the last weight layer) uses ``B`` like FA and leaves its output
  error ``e_top`` for the others; every other layer sends ``e_top D_l`` to its input, ``D_l``
  (n_out × input elements per sample) in ``feedback_weight``.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant_tensor import QuantTensor
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule
from hwsim.models import fastquant
from hwsim.models.feedback import (
    DirectFeedback,
    ErrorSlot,
    capture_error,
    direct_conv2d,
    direct_linear,
    draw_magnitudes,
    feedback_conv2d,
    feedback_linear,
    quantize_feedback,
    uniform_sign_feedback,
    weight_sign,
)
from hwsim.models.quant import FastQuantConv2d, FastQuantLinear


def _plain(t: Tensor | QuantTensor | None) -> Tensor | None:
    return t.value if isinstance(t, QuantTensor) else t


ConvArgs = tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]


class FeedbackLayer:
    """What every feedback-rule layer adds: the rule, its stored feedback, and the BP switch.

    ``feedback_weight`` is a buffer (saved in the ``state_dict``, never given a gradient) holding
    what the rule stores: ``B`` (FA, IFA, KP, DFA's output layer), ``D_l`` (DFA's other layers),
    the magnitudes ``|R|`` (frSF, brSF); it is ``None`` for uSF. ``feedback_rng_state`` (brSF
    only) is the ``torch.Generator`` state the next ``R`` is drawn from. ``direct`` is the
    :class:`DirectFeedback` a model's DFA layers share (``None`` for the other rules) and
    ``direct_top`` marks DFA's output layer.
    """

    rule: Rule
    feedback_bits: int
    use_true_gradient: bool
    feedback_weight: Tensor | None
    feedback_rng_state: Tensor
    feedback_sigma: float
    direct: DirectFeedback | None
    direct_top: bool
    weight: nn.Parameter
    training: bool

    def attach_feedback(
        self,
        rule: Rule,
        feedback: Tensor | None,
        feedback_bits: int,
        *,
        direct: DirectFeedback | None = None,
        direct_top: bool = False,
        rng_state: Tensor | None = None,
        sigma: float = 0.0,
    ) -> None:
        """Set the rule and register its stored feedback (called once by
        :func:`hwsim.models.convert.convert`). ``rng_state`` and ``sigma``: brSF's generator state
        and the σ its redraws use."""
        self.rule = rule
        self.feedback_bits = feedback_bits
        self.use_true_gradient = False
        self.direct = direct
        self.direct_top = direct_top
        self.feedback_sigma = sigma
        stored = None if feedback is None else feedback.detach().clone()
        self.register_buffer("feedback_weight", stored)  # type: ignore[attr-defined]
        if rng_state is not None:
            self.register_buffer("feedback_rng_state", rng_state.clone())  # type: ignore[attr-defined]

    def forward_weight(self) -> Tensor:
        """The weight the forward uses, detached: brevitas' quantized weight, else ``weight``."""
        quant_weight = getattr(self, "quant_weight", None)
        with torch.no_grad():
            if quant_weight is None:
                w = self.weight
            else:  # hwsim.models.fastquant's is brevitas' value, bit for bit
                fast = fastquant.weight_quant(self)  # type: ignore[arg-type]
                w = quant_weight().value if fast is None else fast
        return w.detach()

    def feedback_matrix(self) -> Tensor | None:
        """What errors go back through now: ``B`` (``W``'s shape) for every rule, from the
        current weight for the sign-concordant rules; ``D_l`` for DFA's layers below the
        output layer."""
        kind = self.rule.kind
        if kind == "usf":
            return uniform_sign_feedback(self.forward_weight())
        if kind in ("frsf", "brsf"):
            assert self.feedback_weight is not None
            return self.feedback_weight * weight_sign(self.forward_weight())
        if kind == "kp":
            assert self.feedback_weight is not None
            return quantize_feedback(self.feedback_weight, self.feedback_bits)
        return self.feedback_weight

    def redraw_feedback(self) -> None:
        """brSF: draw new magnitudes ``|R|`` from the generator state in ``feedback_rng_state``
        (and advance that state), so redraws are reproducible and survive a checkpoint."""
        assert self.feedback_weight is not None
        generator = torch.Generator()
        generator.set_state(self.feedback_rng_state.cpu())
        magnitudes = draw_magnitudes(
            self.feedback_weight.shape,
            self.feedback_sigma,
            generator=generator,
            dtype=self.feedback_weight.dtype,
            feedback_bits=self.feedback_bits,
        )
        with torch.no_grad():
            self.feedback_weight.copy_(magnitudes)
            self.feedback_rng_state.copy_(generator.get_state())

    @torch.no_grad()
    def kolen_pollack_update(self, weight_before: Tensor, lr: float) -> None:
        """KP, after an optimizer step took ``W`` from ``weight_before`` to ``weight``: with
        ``s = W_after − W_before`` and ``c = lr · decay``, ``W ← W_before + s − c·W_before`` and
        ``B ← B + s − c·B`` (in float64, then stored at ``W``'s dtype). ``B`` is kept at full
        precision, like the weights brevitas quantizes on use: the backward pass uses it at
        ``feedback_bits`` (:meth:`feedback_matrix`), so updates below one grid step add up."""
        assert self.feedback_weight is not None
        decay = lr * (self.rule.decay or 0.0)
        before = weight_before.double()
        step = self.weight.double() - before
        feedback = self.feedback_weight.double()
        new_feedback = feedback + step - decay * feedback
        if decay:
            self.weight.copy_((before + step - decay * before).to(self.weight.dtype))
        self.feedback_weight.copy_(new_feedback.to(self.feedback_weight.dtype))

    def _backward_feedback(self, w: Tensor) -> Tensor:
        """``B`` for a forward with weight ``w``."""
        kind = self.rule.kind
        if kind == "usf":
            return uniform_sign_feedback(w)
        feedback = self.feedback_weight
        assert feedback is not None
        if kind in ("frsf", "brsf"):
            if kind == "brsf" and self.training:
                self.redraw_feedback()
            return feedback * weight_sign(w.detach())
        if kind == "kp":
            return quantize_feedback(feedback, self.feedback_bits)
        return feedback

    def _product(self, x: Tensor, w: Tensor, b: Tensor | None, conv: ConvArgs | None) -> Tensor:
        """The layer's product under its rule (not the true gradient)."""
        direct = self.direct
        if direct is None:
            feedback = self._backward_feedback(w)
            if conv is None:
                return feedback_linear(x, w, b, feedback)
            return feedback_conv2d(x, w, b, feedback, *conv)
        slot = direct.slot
        feedback = self.feedback_weight
        assert feedback is not None
        if not self.direct_top:
            if conv is None:
                return direct_linear(x, w, b, feedback, slot)
            return direct_conv2d(x, w, b, feedback, slot, *conv)
        y = (
            feedback_linear(x, w, b, feedback)
            if conv is None
            else feedback_conv2d(x, w, b, feedback, *conv)
        )
        if y.dim() != 2:
            raise InputError(
                f"DFA: the output layer's output must be 2-D (batch, n_out), got shape "
                f"{list(y.shape)}"
            )
        direct.slot = ErrorSlot()  # the next forward pass gets its own
        return capture_error(y, slot)


class FeedbackLinear(nn.Linear, FeedbackLayer):
    """``nn.Linear`` whose backward follows its rule."""

    def forward(self, x: Tensor) -> Tensor:
        if self.use_true_gradient:
            return super().forward(x)
        if self.direct is None and self.rule.kind in ("fa", "ifa"):
            return feedback_linear(x, self.weight, self.bias, self.feedback_weight)  # type: ignore[arg-type]
        return self._product(x, self.weight, self.bias, None)


class FeedbackConv2d(nn.Conv2d, FeedbackLayer):
    """``nn.Conv2d`` (zero padding) whose backward follows its rule."""

    def forward(self, x: Tensor) -> Tensor:
        if self.use_true_gradient:
            return super().forward(x)
        conf = (self.stride, self.padding, self.dilation, self.groups)
        return self._product(x, self.weight, self.bias, conf)  # type: ignore[arg-type]


class QuantFeedbackLinear(FastQuantLinear, FeedbackLayer):
    """Brevitas ``QuantLinear``; the product of quantized input and weight follows the rule.
    (Its quantizers run through :mod:`hwsim.models.fastquant`, see :class:`FastQuantLinear`.)"""

    def inner_forward_impl(self, x, quant_weight, quant_bias):  # type: ignore[override]
        x, w, b = _plain(x), _plain(quant_weight), _plain(quant_bias)
        if self.use_true_gradient:
            return torch.nn.functional.linear(x, w, b)
        return self._product(x, w, b, None)


class QuantFeedbackConv2d(FastQuantConv2d, FeedbackLayer):
    """Brevitas ``QuantConv2d`` (zero padding); the product follows the rule."""

    def inner_forward_impl(self, x, quant_weight, quant_bias):  # type: ignore[override]
        x, w, b = _plain(x), _plain(quant_weight), _plain(quant_bias)
        if self.use_true_gradient:
            return torch.nn.functional.conv2d(
                x, w, b, self.stride, self.padding, self.dilation, self.groups
            )
        conf = (self.stride, self.padding, self.dilation, self.groups)
        return self._product(x, w, b, conf)


#: The layer each supported type becomes under a feedback rule.
FEEDBACK_CLASS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: FeedbackLinear,
    nn.Conv2d: FeedbackConv2d,
    QuantLinear: QuantFeedbackLinear,
    QuantConv2d: QuantFeedbackConv2d,
    FastQuantLinear: QuantFeedbackLinear,
    FastQuantConv2d: QuantFeedbackConv2d,
}
