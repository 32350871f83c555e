"""Workloads built from a model spec (``mlp:784-256-10``, ``resnet18``) instead of a run.

``build_workload("resnet18")`` gives the CIFAR ResNet-18 (3×3 stem, no max-pool, 32×32 inputs)
layer by layer, in the workload contract of :mod:`hwsim.core.workload`. Torch-free.

Layers are named as training names them (:mod:`hwsim.core.layer_names`): ``fc1, fc2, …`` for an
MLP; for the ResNet-18 ``conv1`` (the stem), then each block's two 3×3 convolutions followed by
its 1×1 shortcut convolution where it has one (``conv2`` … ``conv20``, the order the block's
forward computes them, its modules' registration order), and ``fc1`` (the classifier).
"""

from __future__ import annotations

import itertools
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.formats import parse_format
from hwsim.core.layer_names import stable_layer_names
from hwsim.core.workload import inferred_format, workload_document

#: Optimizer → state tensors kept per weight element (SGD none, momentum its velocity, Adam m, v).
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}


def build_workload(
    spec: str,
    *,
    batch_size: int = 64,
    weight_bits: int | None = None,
    activation_bits: int | None = None,
    feedback_bits: int | None = None,
    error_bits: int | None = None,
    optimizer: str = "momentum",
    weight_format: str | None = None,
    activation_format: str | None = None,
    feedback_format: str | None = None,
    error_format: str | None = None,
) -> dict[str, Any]:
    """Build a workload document (docs/workload.md) from ``mlp:784-256-10`` or ``resnet18``.

    The document describes one step of the given batch size and no epochs (``epochs`` null).
    Defaults: ``int8`` weights, activations, feedback and errors; SGD with momentum
    (``optimizer``: ``sgd``, ``momentum`` or ``adam``, keeping 0, 1 or 2 state tensors per
    weight). Each operand takes a width, a format, or both (:func:`operand_width_and_format`).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}")
    if optimizer not in OPTIMIZER_STATE:
        raise InputError(
            f"unknown optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZER_STATE)}"
        )
    text = spec.strip().lower()
    given = {
        "weight": (weight_bits, weight_format),
        "activation": (activation_bits, activation_format),
        "feedback": (feedback_bits, feedback_format),
        "error": (error_bits, error_format),
    }
    bits: dict[str, Any] = {"activation_sparsity": None}
    for operand, (width, name) in given.items():
        width, name = operand_width_and_format(operand, width, name)
        bits[f"{operand}_bits"] = width
        bits[f"{operand}_format"] = name
    if text.startswith("mlp:"):
        layers, input_shape = _mlp_layers(spec, text[4:], bits)
    elif text == "resnet18":
        layers, input_shape = _resnet18_layers(bits), [3, 32, 32]
    else:
        raise InputError(
            f"unknown model spec {spec!r}: expected mlp:<widths> (e.g. mlp:784-256-256-10) "
            "or resnet18"
        )
    for layer, name in zip(layers, stable_layer_names([r["kind"] for r in layers]), strict=True):
        layer["name"] = name
    return workload_document(
        source={"kind": "model-spec", "model": spec, "dataset": None, "rule": None},
        input_shape=input_shape,
        batch_size=batch_size,
        optimizer={"name": optimizer, "state_tensors_per_weight": OPTIMIZER_STATE[optimizer]},
        layers=layers,
    )


def operand_width_and_format(
    operand: str, bits: int | None, name: str | None, default_bits: int = 8
) -> tuple[int, str]:
    """An operand's stored width and number format from what was given.

    Neither: ``default_bits`` and its inferred format (``int8``). A width alone: its format is
    inferred as for version-1 workloads (:func:`hwsim.core.workload.inferred_format`: errors of
    32 bits are ``fp32``, everything else ``int<bits>``). A format alone: its width. Both: they
    must agree, else :class:`InputError`.
    """
    flag = f"{operand}_format"
    if name is None:
        width = default_bits if bits is None else bits
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"{operand}_bits must be a positive integer, got {width!r}")
        return width, parse_format(inferred_format(operand, width), f"{operand}_bits").name
    fmt = parse_format(name, flag)
    if bits is not None and bits != fmt.bits:
        raise InputError(
            f"{operand}_bits {bits} contradicts {flag} {fmt.name} ({fmt.bits} bits): give one, "
            "or both agreeing"
        )
    return fmt.bits, fmt.name


def _mlp_layers(
    spec: str, widths_text: str, bits: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int]]:
    try:
        widths = [int(w) for w in widths_text.split("-")]
    except ValueError:
        widths = []
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise InputError(
            f"bad MLP spec {spec!r}: expected mlp:<in>-<hidden>-...-<out> with positive widths"
        )
    layers = [
        {
            "name": "",  # named by build_workload
            "kind": "linear",
            "weight_shape": [out, inp],
            "bias": True,
            "input_shape": [inp],
            "output_shape": [out],
            "macs_per_sample": out * inp,
            **bits,
        }
        for inp, out in itertools.pairwise(widths)
    ]
    return layers, [widths[0]]


def _conv(
    cin: int, cout: int, size: int, k: int, stride: int, bits: dict[str, Any]
) -> dict[str, Any]:
    pad = k // 2
    out = (size + 2 * pad - k) // stride + 1
    return {
        "name": "",  # named by build_workload
        "kind": "conv2d",
        "weight_shape": [cout, cin, k, k],
        "bias": False,
        "input_shape": [cin, size, size],
        "output_shape": [cout, out, out],
        "stride": [stride, stride],
        "padding": [pad, pad],
        "groups": 1,
        "macs_per_sample": cout * out * out * cin * k * k,
        **bits,
    }


def _resnet18_layers(bits: dict[str, Any]) -> list[dict[str, Any]]:
    layers = [_conv(3, 64, 32, 3, 1, bits)]
    cin, size = 64, 32
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            layers.append(_conv(cin, cout, size, 3, stride, bits))
            out = size // stride
            layers.append(_conv(cout, cout, out, 3, 1, bits))
            if stride != 1 or cin != cout:  # the block's 1×1 shortcut convolution
                layers.append(_conv(cin, cout, size, 1, stride, bits))
            cin, size = cout, out
    layers.append(
        {
            "name": "",  # named by build_workload
            "kind": "linear",
            "weight_shape": [10, 512],
            "bias": True,
            "input_shape": [512],
            "output_shape": [10],
            "macs_per_sample": 5120,
            **bits,
        }
    )
    return layers
