"""The workload contract: ``workload.json`` (docs/workload.md), between training and the chip.

One definition for both sides: the learning side writes its record with
:func:`workload_document` (``models.workload``), the simulator reads it with
:func:`load_workload` / :func:`workload_from_dict`, and building a document checks it against
the reader, so nothing is written that the simulator would refuse. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.formats import parse_format
from hwsim.core.layer_names import legacy_layer_renames

WORKLOAD_FORMAT = "hwsim-workload"
WORKLOAD_VERSION = 2
#: Versions this reader accepts: 1 (bit widths only, formats inferred) and 2.
READABLE_VERSIONS = (1, 2)
#: The operands of a layer: each has ``<role>_bits`` and (version 2) ``<role>_format``.
OPERANDS = ("weight", "activation", "feedback", "error")
#: Width at which a version-1 error means float32 (training always recorded float32 errors).
FLOAT_ERROR_BITS = 32


def inferred_format(operand: str, bits: int) -> str:
    """The format of an operand known only by its width (version-1 documents, bits-only knobs).

    Weights, activations and feedback: ``int<bits>``; errors: ``fp32`` at 32 bits (what
    training recorded: float32 errors), else ``int<bits>``.
    """
    if operand == "error" and bits == FLOAT_ERROR_BITS:
        return "fp32"
    return f"int{bits}"


@dataclass(frozen=True)
class Layer:
    """One weight layer with its shapes (per sample), bit widths and number formats.

    ``*_bits`` are stored widths (traffic); ``*_format`` are the number formats of the same
    operands (:mod:`hwsim.core.formats`, they price the MACs), each as wide as its bits.
    """

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
    weight_format: str
    activation_format: str
    feedback_format: str
    error_format: str

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
    """Validate a parsed workload document (format version 2, or 1 with inferred formats)."""

    def fail(key: str, message: str) -> InputError:
        return InputError(f"{where}: {key}: {message}")

    def operand_format(raw: dict[str, Any], operand: str, bits: int, version: int, at: str) -> str:
        key = f"{at}.{operand}_format"
        if version < 2:
            return inferred_format(operand, bits)
        fmt = parse_format(raw[f"{operand}_format"], f"{where}: {key}")
        if fmt.bits != bits:
            raise fail(key, f"{fmt.name} has {fmt.bits} bits but {operand}_bits is {bits}")
        return fmt.name

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
    version = data.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise fail(
            "version",
            f"unsupported workload version {version!r} (this reader knows "
            f"{', '.join(map(str, READABLE_VERSIONS))})",
        )
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
        required = [
            "name",
            "kind",
            "weight_shape",
            "input_shape",
            "output_shape",
            "macs_per_sample",
            *(f"{operand}_bits" for operand in OPERANDS),
        ]
        if version >= 2:
            required += [f"{operand}_format" for operand in OPERANDS]
        for key in required:
            if key not in raw:
                raise fail(f"{at}.{key}", "missing required key")
        if raw["kind"] not in ("linear", "conv2d"):
            raise fail(f"{at}.kind", f"must be linear or conv2d, got {raw['kind']!r}")
        widths = {o: positive(raw[f"{o}_bits"], f"{at}.{o}_bits") for o in OPERANDS}
        formats = {o: operand_format(raw, o, widths[o], version, at) for o in OPERANDS}
        layers.append(
            Layer(
                name=str(raw["name"]),
                kind=raw["kind"],
                weight_shape=shape(raw["weight_shape"], f"{at}.weight_shape"),
                bias=bool(raw.get("bias", False)),
                input_shape=shape(raw["input_shape"], f"{at}.input_shape"),
                output_shape=shape(raw["output_shape"], f"{at}.output_shape"),
                macs_per_sample=positive(raw["macs_per_sample"], f"{at}.macs_per_sample"),
                weight_bits=widths["weight"],
                activation_bits=widths["activation"],
                feedback_bits=widths["feedback"],
                error_bits=widths["error"],
                weight_format=formats["weight"],
                activation_format=formats["activation"],
                feedback_format=formats["feedback"],
                error_format=formats["error"],
            )
        )
    raw_source = data.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    renames = legacy_layer_renames(data)
    if renames:
        layers = [dataclasses.replace(layer, name=renames[layer.name]) for layer in layers]
    return Workload(
        layers=tuple(layers),
        batch_size=batch_size,
        batches=tuple(batches),
        epochs=epochs,
        optimizer_state_per_weight=state,
        model=str(source.get("model") or ""),
    )


def workload_document(
    *,
    source: dict[str, Any],
    input_shape: list[int],
    batch_size: int,
    layers: list[dict[str, Any]],
    optimizer: dict[str, Any],
    train_samples: int | None = None,
    epochs: int | None = None,
    batches: list[dict[str, int]] | None = None,
) -> dict[str, Any]:
    """A ``workload.json`` document (format :data:`WORKLOAD_FORMAT`, version
    :data:`WORKLOAD_VERSION`), checked by :func:`workload_from_dict` before it is returned.

    ``batches`` is one epoch's ``[{batch_size, count}, ...]`` (empty: a single step, no run);
    ``optimizer`` is ``{name, state_tensors_per_weight}``; each layer has the keys of
    :class:`Layer` (``activation_sparsity``, ``stride``, ``padding``, ``groups`` optional), the
    four ``*_format`` keys included.
    """
    batches = batches or []
    document = {
        "format": WORKLOAD_FORMAT,
        "version": WORKLOAD_VERSION,
        "source": source,
        "input_shape": input_shape,
        "batch_size": batch_size,
        "train_samples": train_samples,
        "epochs": epochs,
        "steps_per_epoch": sum(b["count"] for b in batches) if batches else None,
        "batches": batches,
        "optimizer": optimizer,
        "layers": layers,
    }
    workload_from_dict(document, f"workload of {source.get('model') or 'a model'}")
    return document
