"""The workload contract: ``workload.json`` (docs/workload.md), between training and the chip.

One definition for both sides: the learning side writes its record with
:func:`workload_document` (``models.workload``), the simulator reads it with
:func:`load_workload` / :func:`workload_from_dict`, and building a document checks it against
the reader, so nothing is written that the simulator would refuse. Torch-free.
"""

from __future__ import annotations

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
    raw_source = data.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
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
    :class:`Layer` (``activation_sparsity``, ``stride``, ``padding``, ``groups`` optional).
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
