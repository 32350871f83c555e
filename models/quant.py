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

**Speed.** The layers built here are brevitas' classes with one override, ``forward``: it
computes the quantizers with :mod:`hwsim.models.fastquant` (bit-identical values and gradients, from
brevitas' own parameters and buffers), and falls back to brevitas' own ``forward`` wherever that
module does not cover the configuration or the reference path is selected
(``hwsim.models.fastquant.reference_quantizers()``, ``HWSIM_REFERENCE_QUANT=1``). State dicts are
brevitas' own: a plain brevitas module loads them and computes the same outputs.
"""

from __future__ import annotations

from brevitas.core.stats import AbsMax
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from brevitas.quant_tensor import QuantTensor
from torch import Tensor

from hwsim.models import fastquant
from hwsim.models.fastquant import fast_quantizers_enabled as fast_quantizers_enabled
from hwsim.models.fastquant import reference_quantizers as reference_quantizers
from hwsim.models.fastquant import set_fast_quantizers as set_fast_quantizers


class DetachedAbsMax(AbsMax):
    """``max|W|`` without gradient: the scale is a statistic, not a path for the error."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x.detach())


class FastQuantLinear(QuantLinear):
    """Brevitas ``QuantLinear`` whose forward computes the weight quantizer with
    :func:`hwsim.models.fastquant.weight_quant` (brevitas' own forward where it does not apply)."""

    def forward(self, input: Tensor | QuantTensor) -> Tensor | QuantTensor:  # type: ignore[override]
        out = fast_layer_forward(self, input)
        return super().forward(input) if out is None else out


class FastQuantConv2d(QuantConv2d):
    """Brevitas ``QuantConv2d`` with the weight quantizer of :class:`FastQuantLinear`."""

    def forward(self, input: Tensor | QuantTensor) -> Tensor | QuantTensor:  # type: ignore[override]
        out = fast_layer_forward(self, input)
        return super().forward(input) if out is None else out


class FastQuantReLU(QuantReLU):
    """Brevitas ``QuantReLU`` computed by :func:`hwsim.models.fastquant.act_quant` where it
    applies."""

    def forward(self, input: Tensor | QuantTensor) -> Tensor | QuantTensor:  # type: ignore[override]
        out = None if isinstance(input, QuantTensor) else fastquant.act_quant(self, input)
        return super().forward(input) if out is None else out


class FastQuantIdentity(QuantIdentity):
    """Brevitas ``QuantIdentity`` computed by :func:`hwsim.models.fastquant.act_quant` where it
    applies."""

    def forward(self, input: Tensor | QuantTensor) -> Tensor | QuantTensor:  # type: ignore[override]
        out = None if isinstance(input, QuantTensor) else fastquant.act_quant(self, input)
        return super().forward(input) if out is None else out


def fast_layer_forward(layer: QuantLinear | QuantConv2d, x: Tensor | QuantTensor) -> Tensor | None:
    """Brevitas' ``QuantWBIOL.forward`` for a layer whose only quantizer is its weight's
    (no input, output or bias quantization, plain tensors in and out), with the weight from
    :func:`hwsim.models.fastquant.weight_quant`; ``None`` where brevitas' own forward must run."""
    if (
        isinstance(x, QuantTensor)
        or layer.return_quant_tensor
        or layer.export_mode
        or layer.input_quant.is_quant_enabled
        or layer.output_quant.is_quant_enabled
        or layer.bias_quant.is_quant_enabled
    ):
        return None
    w = fastquant.weight_quant(layer)
    if w is None:
        return None
    out: Tensor = layer.inner_forward_impl(x, w, layer.bias)
    return out


class WeightQuantSTE(Int8WeightPerTensorFloat):
    """Symmetric narrow-range per-tensor int weights; scale = max|W| / (2^(b-1) - 1), detached."""

    scaling_stats_impl = DetachedAbsMax


def quant_linear(
    in_features: int, out_features: int, *, bias: bool, weight_bits: int
) -> QuantLinear:
    """A brevitas ``QuantLinear`` with :class:`WeightQuantSTE` at ``weight_bits``."""
    return FastQuantLinear(
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
    return FastQuantConv2d(
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
    return FastQuantReLU(bit_width=act_bits, return_quant_tensor=False)


def quant_input(act_bits: int) -> QuantIdentity:
    """Unsigned input quantizer at ``act_bits`` (inputs lie in [0, 1])."""
    return FastQuantIdentity(
        act_quant=Uint8ActPerTensorFloat, bit_width=act_bits, return_quant_tensor=False
    )
