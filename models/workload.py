"""Record ``workload.json`` (docs/workload.md) from a model and its training configuration."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from hwsim.core.workload import workload_document
from hwsim.models.config import TrainConfig
from hwsim.models.convert import layer_names, observe_layers, weight_layers
from hwsim.models.feedback import FLOAT_BITS

#: Errors (gradients) are not quantized by the training side: they travel as float32.
ERROR_BITS = FLOAT_BITS
ERROR_FORMAT = "fp32"


def operand_format(bits: int) -> str:
    """The number format training uses for an operand of ``bits`` (``config.*_bits``).

    32 means float: brevitas is not used and the tensor stays float32 (``fp32``). Any other
    width is a brevitas integer quantizer (``models/quant.py``: weights symmetric signed int,
    activations unsigned int, ``B`` on a symmetric integer grid or sign for 1 bit): ``int<bits>``.
    """
    return "fp32" if bits == FLOAT_BITS else f"int{bits}"


def batch_schedule(train_samples: int, batch_size: int) -> list[dict[str, int]]:
    """Batch sizes of one epoch: full batches first, then the last partial batch if any."""
    full, rest = divmod(train_samples, batch_size)
    batches = [{"batch_size": batch_size, "count": full}] if full else []
    if rest:
        batches.append({"batch_size": rest, "count": 1})
    return batches


def optimizer_state_tensors(config: TrainConfig) -> int:
    """Optimizer state kept per weight element: Adam 2 (m, v), SGD+momentum 1, plain SGD 0."""
    if config.optimizer == "adam":
        return 2
    return 1 if config.momentum > 0 else 0


def record_workload(
    model: nn.Module, config: TrainConfig, sample_inputs: Tensor, train_samples: int
) -> dict[str, Any]:
    """Describe ``model``'s weight layers as the simulator needs them.

    Shapes and activation sparsity (fraction of exact zeros in each layer's input) are measured
    with forward hooks on ``sample_inputs`` in eval mode. Layers are named by
    :func:`hwsim.models.convert.layer_names` (``fc1``, ``conv1``, …).
    """
    layers = weight_layers(model)
    names = layer_names(model)
    seen: dict[str, dict[str, Any]] = {}

    def measure(name: str, x: Tensor, out: Tensor) -> None:
        seen[name] = {
            "input_shape": list(x.shape[1:]),
            "output_shape": list(out.shape[1:]),
            "sparsity": float((x == 0).float().mean()),
        }

    observe_layers(model, layers, sample_inputs, measure)

    records = []
    for name, m in layers:
        shapes = seen[name]
        is_conv = isinstance(m, nn.Conv2d)
        weight_shape = list(m.weight.shape)
        per_output = math.prod(weight_shape[1:])
        out_elems = shapes["output_shape"][0] if not is_conv else math.prod(shapes["output_shape"])
        entry: dict[str, Any] = {
            "name": names[m],
            "kind": "conv2d" if is_conv else "linear",
            "weight_shape": weight_shape,
            "bias": m.bias is not None,
            "input_shape": shapes["input_shape"],
            "output_shape": shapes["output_shape"],
            "macs_per_sample": out_elems * per_output,
            "weight_bits": config.weight_bits,
            "activation_bits": config.act_bits,
            "feedback_bits": config.effective_feedback_bits,
            "error_bits": ERROR_BITS,
            "weight_format": operand_format(config.weight_bits),
            "activation_format": operand_format(config.act_bits),
            "feedback_format": operand_format(config.effective_feedback_bits),
            "error_format": ERROR_FORMAT,
            "activation_sparsity": round(shapes["sparsity"], 6),
        }
        if is_conv:
            entry["stride"] = list(m.stride)
            entry["padding"] = list(m.padding)
            entry["groups"] = m.groups
        records.append(entry)

    batches = batch_schedule(train_samples, config.batch_size)
    return workload_document(
        source={
            "kind": "training-run",
            "model": config.model,
            "dataset": config.dataset,
            "rule": config.algo,
        },
        input_shape=list(sample_inputs.shape[1:]),
        batch_size=config.batch_size,
        train_samples=train_samples,
        epochs=config.epochs,
        batches=batches,
        optimizer={
            "name": config.optimizer,
            "state_tensors_per_weight": optimizer_state_tensors(config),
        },
        layers=records,
    )
