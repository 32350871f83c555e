"""Layers trained by a fixed-feedback rule (FA, IFA, soft IFA), float and brevitas-quantized.

Each class subclasses the layer it replaces and changes one thing: the product's backward.
Brevitas layers are overridden at ``inner_forward_impl``, so quantization stays brevitas' own.
``use_true_gradient`` switches a layer to ordinary autograd (the BP view used by analyses).
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant_tensor import QuantTensor
from torch import Tensor, nn

from hwsim.core.rules import Rule
from models.feedback import feedback_conv2d, feedback_linear


def _plain(t: Tensor | QuantTensor | None) -> Tensor | None:
    return t.value if isinstance(t, QuantTensor) else t


class FeedbackLayer:
    """What every fixed-feedback layer adds: the rule, ``B`` as a buffer, and the BP switch.

    ``feedback_weight`` (``B``) has the shape of ``weight``, is saved in the ``state_dict`` and is
    never updated: it is a buffer, not a parameter, and no gradient reaches it.
    """

    rule: Rule
    feedback_bits: int
    use_true_gradient: bool
    feedback_weight: Tensor
    weight: nn.Parameter

    def attach_feedback(self, rule: Rule, feedback: Tensor, feedback_bits: int) -> None:
        """Set the rule and register ``B`` (called once by :func:`models.convert.convert`)."""
        self.rule = rule
        self.feedback_bits = feedback_bits
        self.use_true_gradient = False
        self.register_buffer("feedback_weight", feedback.detach().clone())  # type: ignore[attr-defined]


class FeedbackLinear(nn.Linear, FeedbackLayer):
    """``nn.Linear`` whose backward sends errors through ``B``."""

    def forward(self, x: Tensor) -> Tensor:
        if self.use_true_gradient:
            return super().forward(x)
        return feedback_linear(x, self.weight, self.bias, self.feedback_weight)


class FeedbackConv2d(nn.Conv2d, FeedbackLayer):
    """``nn.Conv2d`` (zero padding) whose backward is the transposed convolution by ``B``."""

    def forward(self, x: Tensor) -> Tensor:
        if self.use_true_gradient:
            return super().forward(x)
        return feedback_conv2d(
            x,
            self.weight,
            self.bias,
            self.feedback_weight,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )


class QuantFeedbackLinear(QuantLinear, FeedbackLayer):
    """Brevitas ``QuantLinear``; the product of quantized input and weight uses ``B`` backward."""

    def inner_forward_impl(self, x, quant_weight, quant_bias):  # type: ignore[override]
        x, w, b = _plain(x), _plain(quant_weight), _plain(quant_bias)
        if self.use_true_gradient:
            return torch.nn.functional.linear(x, w, b)
        return feedback_linear(x, w, b, self.feedback_weight)


class QuantFeedbackConv2d(QuantConv2d, FeedbackLayer):
    """Brevitas ``QuantConv2d`` (zero padding) with the transposed convolution by ``B`` backward."""

    def inner_forward_impl(self, x, quant_weight, quant_bias):  # type: ignore[override]
        x, w, b = _plain(x), _plain(quant_weight), _plain(quant_bias)
        if self.use_true_gradient:
            return torch.nn.functional.conv2d(
                x, w, b, self.stride, self.padding, self.dilation, self.groups
            )
        return feedback_conv2d(
            x, w, b, self.feedback_weight, self.stride, self.padding, self.dilation, self.groups
        )


#: The layer each supported type becomes under a fixed-feedback rule.
FEEDBACK_CLASS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: FeedbackLinear,
    nn.Conv2d: FeedbackConv2d,
    QuantLinear: QuantFeedbackLinear,
    QuantConv2d: QuantFeedbackConv2d,
}
