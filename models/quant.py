"""Quantization choices (brevitas), made deliberately and documented.

**Weights.** Brevitas' default ``Int8WeightPerTensorFloat`` computes its scale from
``max|W|`` *with* gradient, so dL/dW is not a plain straight-through estimator: the element
holding the maximum also receives the gradient of the scale. We keep brevitas' quantizer but
detach the statistic (:class:`DetachedAbsMax`), which makes the weight gradient exactly the
straight-through estimate ``dL/dW = dL/dW_q`` (tests pin both behaviours). The scale still
follows ``max|W|`` every step, so the forward is identical to brevitas' default.

**Activations.** Hidden activations use brevitas' ``QuantReLU`` (unsigned, per-tensor scale
learned from runtime statistics), and the network input ``QuantIdentity`` with the unsigned
quantizer (inputs lie in [0, 1]). Errors (gradients) are not quantized: they stay float32.
"""

from __future__ import annotations

from brevitas.core.stats import AbsMax
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from torch import Tensor


class DetachedAbsMax(AbsMax):
    """``max|W|`` without gradient: the scale is a statistic, not a path for the error."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x.detach())


class WeightQuantSTE(Int8WeightPerTensorFloat):
    """Symmetric narrow-range per-tensor int weights; scale = max|W| / (2^(b-1) - 1), detached."""

    scaling_stats_impl = DetachedAbsMax


def quant_linear(
    in_features: int, out_features: int, *, bias: bool, weight_bits: int
) -> QuantLinear:
    """A brevitas ``QuantLinear`` with :class:`WeightQuantSTE` at ``weight_bits``."""
    return QuantLinear(
        in_features,
        out_features,
        bias=bias,
        weight_quant=WeightQuantSTE,
        weight_bit_width=weight_bits,
    )


def quant_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    bias: bool,
    weight_bits: int,
) -> QuantConv2d:
    """A brevitas ``QuantConv2d`` with :class:`WeightQuantSTE` at ``weight_bits``."""
    return QuantConv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        bias=bias,
        weight_quant=WeightQuantSTE,
        weight_bit_width=weight_bits,
    )


def quant_relu(act_bits: int) -> QuantReLU:
    """Brevitas' ``QuantReLU`` at ``act_bits`` returning plain tensors."""
    return QuantReLU(bit_width=act_bits, return_quant_tensor=False)


def quant_input(act_bits: int) -> QuantIdentity:
    """Unsigned input quantizer at ``act_bits`` (inputs lie in [0, 1])."""
    return QuantIdentity(
        act_quant=Uint8ActPerTensorFloat, bit_width=act_bits, return_quant_tensor=False
    )
