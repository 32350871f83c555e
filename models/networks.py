"""The networks the rules are compared on: an MLP of configurable depth and a small CNN.

Both come in float (``weight_bits == 32``) and brevitas-quantized form. Weights are drawn
N(0, gain² / fan_in) from an explicit generator (gain 1 = LeCun, √2 = He); biases start at 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from hwsim.core.errors import InputError
from hwsim.models.config import ARCHITECTURES, MAX_DEPTH, MIN_DEPTH
from hwsim.models.convert import weight_layers
from hwsim.models.feedback import FLOAT_BITS
from hwsim.models.quant import quant_conv2d, quant_input, quant_linear, quant_relu


def _linear(n_in: int, n_out: int, weight_bits: int) -> nn.Module:
    if weight_bits == FLOAT_BITS:
        return nn.Linear(n_in, n_out)
    return quant_linear(n_in, n_out, bias=True, weight_bits=weight_bits)


def _conv(c_in: int, c_out: int, weight_bits: int) -> nn.Module:
    if weight_bits == FLOAT_BITS:
        return nn.Conv2d(c_in, c_out, 3, padding=1)
    return quant_conv2d(c_in, c_out, 3, padding=1, bias=True, weight_bits=weight_bits)


def _relu(act_bits: int) -> nn.Module:
    return nn.ReLU() if act_bits == FLOAT_BITS else quant_relu(act_bits)


def _input(act_bits: int) -> list[nn.Module]:
    return [] if act_bits == FLOAT_BITS else [quant_input(act_bits)]


def _check_bits(name: str, bits: int) -> None:
    if bits != FLOAT_BITS and not 2 <= bits <= 16:
        raise InputError(f"{name} must be 32 (float) or 2..16, got {bits}")


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    depth: int = 4,
    width: int = 256,
    weight_bits: int = FLOAT_BITS,
    act_bits: int = FLOAT_BITS,
) -> nn.Sequential:
    """Flatten, then ``depth`` Linear layers (``depth - 1`` hidden of ``width``) with ReLU."""
    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise InputError(f"depth must be {MIN_DEPTH}..{MAX_DEPTH} weight layers, got {depth}")
    if width < 1:
        raise InputError(f"width must be positive, got {width}")
    sizes = [math.prod(input_shape)] + [width] * (depth - 1) + [num_classes]
    layers: list[nn.Module] = [nn.Flatten(), *_input(act_bits)]
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(_linear(n_in, n_out, weight_bits))
        if i < depth - 1:
            layers.append(_relu(act_bits))
    return nn.Sequential(*layers)


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 32,
    weight_bits: int = FLOAT_BITS,
    act_bits: int = FLOAT_BITS,
) -> nn.Sequential:
    """A small CIFAR-style CNN: conv(w)-pool-conv(2w)-pool-fc(4w)-fc, 3×3 convs, ReLU."""
    if len(input_shape) != 3:
        raise InputError(f"cnn needs image inputs [C, H, W], got shape {list(input_shape)}")
    c, h, w = input_shape
    flat = 2 * width * (h // 4) * (w // 4)
    return nn.Sequential(
        *_input(act_bits),
        _conv(c, width, weight_bits),
        _relu(act_bits),
        nn.MaxPool2d(2),
        _conv(width, 2 * width, weight_bits),
        _relu(act_bits),
        nn.MaxPool2d(2),
        nn.Flatten(),
        _linear(flat, 4 * width, weight_bits),
        _relu(act_bits),
        _linear(4 * width, num_classes, weight_bits),
    )


def build_network(
    arch: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    depth: int | None = None,
    width: int | None = None,
    weight_bits: int = FLOAT_BITS,
    act_bits: int = FLOAT_BITS,
    forward_gain: float = math.sqrt(2.0),
    seed: int = 0,
) -> nn.Sequential:
    """Build ``arch`` (``mlp`` or ``cnn``) and initialize its weights from ``seed``."""
    _check_bits("weight_bits", weight_bits)
    _check_bits("act_bits", act_bits)
    if arch == "mlp":
        net = mlp(
            input_shape,
            num_classes,
            depth=depth or 4,
            width=width or 256,
            weight_bits=weight_bits,
            act_bits=act_bits,
        )
    elif arch == "cnn":
        if depth is not None:
            raise InputError("depth applies to the mlp only; the cnn has 4 weight layers")
        net = cnn(
            input_shape, num_classes, width=width or 32, weight_bits=weight_bits, act_bits=act_bits
        )
    else:
        raise InputError(f"unknown network {arch!r}: expected one of {', '.join(ARCHITECTURES)}")
    init_weights(net, gain=forward_gain, seed=seed)
    return net


def init_weights(model: nn.Module, *, gain: float, seed: int) -> None:
    """Draw every weight N(0, gain² / fan_in) from a generator seeded with ``seed``; zero biases."""
    if gain <= 0:
        raise InputError(f"forward gain must be positive, got {gain}")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in weight_layers(model):
            fan_in = layer.weight[0].numel()
            std = gain / math.sqrt(fan_in)
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
            if layer.bias is not None:
                layer.bias.zero_()
