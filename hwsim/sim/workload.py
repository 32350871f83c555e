"""Workloads: read ``workload.json`` (docs/workload.md) or build one from a model spec.

Pure Python: the simulator never imports torch. ``build_workload("resnet18")`` gives the CIFAR
ResNet-18 (3×3 stem, no max-pool, 32×32 inputs) layer by layer.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError

WORKLOAD_FORMAT = "hwsim-workload"
WORKLOAD_VERSION = 1


@dataclass(frozen=True)
class Layer:
    """One weight layer with its shapes (per sample) and bit widths."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    bias: bool
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs_per_sample: int
    weight_bits: int
    activation_bits: int
    feedback_bits: int
    error_bits: int

    @property
    def weight_elements(self) -> int:
        """Elements of W without the bias (also the size of B)."""
        return math.prod(self.weight_shape)

    @property
    def bias_elements(self) -> int:
        """Bias elements (out features / channels), 0 without a bias."""
        return self.weight_shape[0] if self.bias else 0

    @property
    def input_elements(self) -> int:
        """Input activations of one sample."""
        return math.prod(self.input_shape)

    @property
    def output_elements(self) -> int:
        """Output activations of one sample."""
        return math.prod(self.output_shape)


@dataclass(frozen=True)
class Workload:
    """A network and its training run, as the simulator sees it."""

    layers: tuple[Layer, ...]
    batch_size: int
    batches: tuple[tuple[int, int], ...]
    epochs: int | None
    optimizer_state_per_weight: int
    model: str = ""

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch."""
        return sum(count for _, count in self.batches)


def load_workload(path: str | Path) -> Workload:
    """Read and validate a ``workload.json`` file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read workload ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return workload_from_dict(data, str(path))


def workload_from_dict(data: Any, where: str = "<workload>") -> Workload:
    """Validate a parsed workload document (format version 1)."""

    def fail(key: str, message: str) -> InputError:
        return InputError(f"{where}: {key}: {message}")

    def positive(value: Any, key: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise fail(key, f"must be an integer ≥ {minimum}, got {value!r}")
        return value

    def shape(value: Any, key: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise fail(key, f"must be a non-empty list of integers, got {value!r}")
        return tuple(positive(v, key) for v in value)

    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a JSON object")
    if data.get("format") != WORKLOAD_FORMAT:
        raise fail("format", f"must be {WORKLOAD_FORMAT!r}, got {data.get('format')!r}")
    if data.get("version") != WORKLOAD_VERSION:
        raise fail("version", f"unsupported workload version {data.get('version')!r} (this is 1)")
    for key in ("batch_size", "layers", "optimizer"):
        if key not in data:
            raise fail(key, "missing required key")
    batch_size = positive(data["batch_size"], "batch_size")
    raw_batches = data.get("batches") or [{"batch_size": batch_size, "count": 1}]
    if not isinstance(raw_batches, list):
        raise fail("batches", "must be a list of {batch_size, count}")
    batches = []
    for i, b in enumerate(raw_batches):
        if not isinstance(b, dict):
            raise fail(f"batches[{i}]", "must be an object {batch_size, count}")
        batches.append(
            (
                positive(b.get("batch_size"), f"batches[{i}].batch_size"),
                positive(b.get("count"), f"batches[{i}].count"),
            )
        )
    epochs = data.get("epochs")
    if epochs is not None:
        epochs = positive(epochs, "epochs")
    if not data.get("batches"):
        epochs = None  # without a recorded epoch there is no run to total
    optimizer = data["optimizer"]
    if not isinstance(optimizer, dict):
        raise fail("optimizer", "must be an object {name, state_tensors_per_weight}")
    state = positive(
        optimizer.get("state_tensors_per_weight"), "optimizer.state_tensors_per_weight", 0
    )
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list) or not raw_layers:
        raise fail("layers", "must be a non-empty list")
    layers = []
    for i, raw in enumerate(raw_layers):
        at = f"layers[{i}]"
        if not isinstance(raw, dict):
            raise fail(at, "must be an object")
        for key in (
            "name",
            "kind",
            "weight_shape",
            "input_shape",
            "output_shape",
            "macs_per_sample",
            "weight_bits",
            "activation_bits",
            "feedback_bits",
            "error_bits",
        ):
            if key not in raw:
                raise fail(f"{at}.{key}", "missing required key")
        if raw["kind"] not in ("linear", "conv2d"):
            raise fail(f"{at}.kind", f"must be linear or conv2d, got {raw['kind']!r}")
        layers.append(
            Layer(
                name=str(raw["name"]),
                kind=raw["kind"],
                weight_shape=shape(raw["weight_shape"], f"{at}.weight_shape"),
                bias=bool(raw.get("bias", False)),
                input_shape=shape(raw["input_shape"], f"{at}.input_shape"),
                output_shape=shape(raw["output_shape"], f"{at}.output_shape"),
                macs_per_sample=positive(raw["macs_per_sample"], f"{at}.macs_per_sample"),
                weight_bits=positive(raw["weight_bits"], f"{at}.weight_bits"),
                activation_bits=positive(raw["activation_bits"], f"{at}.activation_bits"),
                feedback_bits=positive(raw["feedback_bits"], f"{at}.feedback_bits"),
                error_bits=positive(raw["error_bits"], f"{at}.error_bits"),
            )
        )
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    return Workload(
        layers=tuple(layers),
        batch_size=batch_size,
        batches=tuple(batches),
        epochs=epochs,
        optimizer_state_per_weight=state,
        model=str(source.get("model") or ""),
    )


# ---------------------------------------------------------------------------------------------
# building from a model spec


def build_workload(
    spec: str,
    *,
    batch_size: int = 64,
    weight_bits: int = 8,
    activation_bits: int = 8,
    feedback_bits: int = 8,
    error_bits: int = 8,
    optimizer_state_per_weight: int = 1,
) -> dict[str, Any]:
    """Build a workload document (docs/workload.md) from ``mlp:784-256-10`` or ``resnet18``.

    The document describes one step of the given batch size and no epochs (``epochs`` null).
    Defaults: 8-bit weights, activations, feedback and errors; SGD with momentum (1 state tensor).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}")
    text = spec.strip().lower()
    bits = {
        "weight_bits": weight_bits,
        "activation_bits": activation_bits,
        "feedback_bits": feedback_bits,
        "error_bits": error_bits,
        "activation_sparsity": None,
    }
    if text.startswith("mlp:"):
        layers, input_shape = _mlp_layers(spec, text[4:], bits)
    elif text == "resnet18":
        layers, input_shape = _resnet18_layers(bits), [3, 32, 32]
    else:
        raise InputError(
            f"unknown model spec {spec!r}: expected mlp:<widths> (e.g. mlp:784-256-256-10) "
            "or resnet18"
        )
    return {
        "format": WORKLOAD_FORMAT,
        "version": WORKLOAD_VERSION,
        "source": {"kind": "model-spec", "model": spec, "dataset": None, "rule": None},
        "input_shape": input_shape,
        "batch_size": batch_size,
        "train_samples": None,
        "epochs": None,
        "steps_per_epoch": None,
        "batches": [],
        "optimizer": {"name": "sgd", "state_tensors_per_weight": optimizer_state_per_weight},
        "layers": layers,
    }


def _mlp_layers(spec: str, widths_text: str, bits: dict) -> tuple[list[dict], list[int]]:
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
            "name": f"layers.{i}",
            "kind": "linear",
            "weight_shape": [out, inp],
            "bias": True,
            "input_shape": [inp],
            "output_shape": [out],
            "macs_per_sample": out * inp,
            **bits,
        }
        for i, (inp, out) in enumerate(itertools.pairwise(widths))
    ]
    return layers, [widths[0]]


def _conv(name: str, cin: int, cout: int, size: int, k: int, stride: int, bits: dict) -> dict:
    pad = k // 2
    out = (size + 2 * pad - k) // stride + 1
    return {
        "name": name,
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


def _resnet18_layers(bits: dict) -> list[dict]:
    layers = [_conv("conv1", 3, 64, 32, 3, 1, bits)]
    cin, size = 64, 32
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            base = f"layer{stage}.{block}"
            layers.append(_conv(f"{base}.conv1", cin, cout, size, 3, stride, bits))
            out = size // stride
            layers.append(_conv(f"{base}.conv2", cout, cout, out, 3, 1, bits))
            if stride != 1 or cin != cout:
                layers.append(_conv(f"{base}.shortcut.0", cin, cout, size, 1, stride, bits))
            cin, size = cout, out
    layers.append(
        {
            "name": "linear",
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
