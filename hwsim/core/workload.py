"""The workload contract: ``workload.json`` (docs/workload.md), between training and the chip.

One definition for both sides: the learning side writes its record with
:func:`workload_document` (``hwsim.models.workload``), the simulator reads it with
:func:`load_workload` / :func:`workload_from_dict`, and building a document checks it against
the reader, so nothing is written that the simulator would refuse. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
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
#: ``update_sparsity.measured`` of what training records (docs/workload.md, "Update sparsity").
UPDATE_SPARSITY_MEASURED = "stored weight levels before and after every optimizer step"
#: The keys of ``update_sparsity`` and of each of its layers (all required).
UPDATE_SPARSITY_KEYS = ("measured", "batch_size", "layers")
LAYER_UPDATE_KEYS = (
    "weights",
    "levels",
    "changed_fraction",
    "mean_level_change",
    "steps",
    "max_changes_per_weight",
    "mean_changes_per_weight",
)
#: Relative tolerance of ``mean_changes_per_weight`` against the per-epoch fractions it must
#: equal (both are exact ratios of the same integer counts, written as floats).
UPDATE_SPARSITY_RTOL = 1e-6

#: The reader's error builder: ``fail(key, message)`` is ``InputError("where: key: message")``.
Fail = Callable[[str, str], InputError]


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
class LayerUpdates:
    """How often one layer's stored weight levels changed during training (docs/workload.md,
    "Update sparsity"). Lists are per epoch, epochs 1..E; an epoch of 0 steps was not measured.

    ``weights``: weight elements (bias excluded); ``levels``: their stored format (the layer's
    ``weight_format``); ``changed_fraction[e]``: mean over the epoch's steps of the fraction of
    weights whose level changed in a step; ``mean_level_change[e]``: mean ``|Δlevel|`` over the
    changed weights (``None`` for float levels); ``steps[e]``: optimizer steps measured;
    ``max_changes_per_weight`` / ``mean_changes_per_weight``: over the measured steps, how many
    of them changed a weight's level, at most and on average over the weights.
    """

    weights: int
    levels: str
    changed_fraction: tuple[float, ...]
    mean_level_change: tuple[float | None, ...]
    steps: tuple[int, ...]
    max_changes_per_weight: int
    mean_changes_per_weight: float

    @property
    def total_steps(self) -> int:
        """Optimizer steps measured over the run."""
        return sum(self.steps)

    @property
    def run_changed_fraction(self) -> float:
        """Mean fraction of weights changed per measured step over the run (the step-weighted
        mean of ``changed_fraction``: ``Σ f_e·steps_e / Σ steps_e``); 0 without steps."""
        total = self.total_steps
        if not total:
            return 0.0
        return sum(f * n for f, n in zip(self.changed_fraction, self.steps, strict=True)) / total


@dataclass(frozen=True)
class UpdateSparsity:
    """The measured update sparsity of a training run: per layer name, its
    :class:`LayerUpdates`; ``batch_size`` is the nominal batch the steps were measured at."""

    batch_size: int
    layers: dict[str, LayerUpdates]


@dataclass(frozen=True)
class Workload:
    """A network and its training run, as the simulator sees it.

    ``update_sparsity``: how often training changed each layer's stored weight levels, or
    ``None`` when not measured (model specs, runs from before it was measured).
    """

    layers: tuple[Layer, ...]
    batch_size: int
    batches: tuple[tuple[int, int], ...]
    epochs: int | None
    optimizer_state_per_weight: int
    model: str = ""
    update_sparsity: UpdateSparsity | None = None

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
    raw_names = [layer.name for layer in layers]
    if renames:
        layers = [dataclasses.replace(layer, name=renames[layer.name]) for layer in layers]
    update_sparsity = _update_sparsity(
        data.get("update_sparsity"),
        dict(zip(raw_names, layers, strict=True)),
        version,
        epochs if data.get("batches") else None,
        sum(count for _, count in batches) if data.get("batches") else None,
        fail,
    )
    return Workload(
        layers=tuple(layers),
        batch_size=batch_size,
        batches=tuple(batches),
        epochs=epochs,
        optimizer_state_per_weight=state,
        model=str(source.get("model") or ""),
        update_sparsity=update_sparsity,
    )


def _update_sparsity(
    raw: Any,
    layers: dict[str, Layer],
    version: int,
    epochs: int | None,
    steps_per_epoch: int | None,
    fail: Fail,
) -> UpdateSparsity | None:
    """Validate ``update_sparsity`` (docs/workload.md, "Update sparsity"); ``None`` when absent.

    ``layers`` maps each layer's name as the document writes it to the layer as read (a legacy
    name to its renamed layer); ``epochs`` and ``steps_per_epoch`` bound the per-epoch lists
    when the document records a run.
    """
    if raw is None:
        return None
    top = "update_sparsity"
    if not isinstance(raw, dict):
        raise fail(top, f"must be an object {{{', '.join(UPDATE_SPARSITY_KEYS)}}} or null")
    _known_keys(raw, UPDATE_SPARSITY_KEYS, top, fail)
    measured = raw["measured"]
    if not isinstance(measured, str) or not measured.strip():
        raise fail(f"{top}.measured", f"must be a non-empty string, got {measured!r}")
    batch_size = _count(raw["batch_size"], f"{top}.batch_size", fail, minimum=1)
    raw_layers = raw["layers"]
    if not isinstance(raw_layers, dict):
        raise fail(f"{top}.layers", "must be an object {layer name: {...}}")
    unknown = [name for name in raw_layers if name not in layers]
    if unknown:
        raise fail(
            f"{top}.layers.{unknown[0]}",
            f"not a layer of this workload (its layers: {', '.join(layers)})",
        )
    missing = [name for name in layers if name not in raw_layers]
    if missing:
        raise fail(f"{top}.layers.{missing[0]}", "missing: every layer must be listed")
    read: dict[str, LayerUpdates] = {}
    steps_seen: tuple[str, tuple[int, ...]] | None = None
    for name, layer in layers.items():
        entry = _layer_updates(
            raw_layers[name], layer, version, epochs, steps_per_epoch, f"{top}.layers.{name}", fail
        )
        if steps_seen is not None and entry.steps != steps_seen[1]:
            raise fail(
                f"{top}.layers.{name}.steps",
                f"{list(entry.steps)} differs from {steps_seen[0]}'s {list(steps_seen[1])}: "
                "every layer is measured on the same steps",
            )
        steps_seen = steps_seen or (name, entry.steps)
        read[layer.name] = entry
    return UpdateSparsity(batch_size=batch_size, layers=read)


def _known_keys(raw: dict[str, Any], keys: tuple[str, ...], at: str, fail: Fail) -> None:
    for key in raw:
        if key not in keys:
            raise fail(f"{at}.{key}", f"unknown key (expected {', '.join(keys)})")
    for key in keys:
        if key not in raw:
            raise fail(f"{at}.{key}", "missing required key")


def _count(value: Any, key: str, fail: Fail, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(key, f"must be an integer ≥ {minimum}, got {value!r}")
    return value


def _real(value: Any, key: str, fail: Fail, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(key, f"must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f"≥ {low:g}"
        raise fail(key, f"must be a finite number in {span}, got {value!r}")
    return number


def _layer_updates(
    raw: Any,
    layer: Layer,
    version: int,
    epochs: int | None,
    steps_per_epoch: int | None,
    at: str,
    fail: Fail,
) -> LayerUpdates:
    """One layer's entry of ``update_sparsity.layers``, checked against ``layer`` and the
    invariants of what it counts."""
    if not isinstance(raw, dict):
        raise fail(at, f"must be an object {{{', '.join(LAYER_UPDATE_KEYS)}}}")
    _known_keys(raw, LAYER_UPDATE_KEYS, at, fail)
    weights = _count(raw["weights"], f"{at}.weights", fail, minimum=1)
    if weights != layer.weight_elements:
        raise fail(
            f"{at}.weights",
            f"{weights} but the layer's weight_shape {list(layer.weight_shape)} has "
            f"{layer.weight_elements} elements",
        )
    try:
        levels = parse_format(raw["levels"])
    except InputError:
        raise fail(
            f"{at}.levels", f"unknown number format {raw['levels']!r} (expected int<N> or fp32)"
        ) from None
    if version >= 2 and levels.name != layer.weight_format:
        raise fail(
            f"{at}.levels", f"{levels.name} but the layer's weight_format is {layer.weight_format}"
        )
    if levels.bits != layer.weight_bits:
        raise fail(
            f"{at}.levels",
            f"{levels.name} has {levels.bits} bits but weight_bits is {layer.weight_bits}",
        )
    lists = {}
    for key in ("changed_fraction", "mean_level_change", "steps"):
        value = raw[key]
        if not isinstance(value, list):
            raise fail(f"{at}.{key}", f"must be a list (one value per epoch), got {value!r}")
        lists[key] = value
    lengths = {key: len(value) for key, value in lists.items()}
    n_epochs = lengths["steps"]
    for key, n in lengths.items():
        if n != n_epochs:
            raise fail(
                f"{at}.{key}",
                f"{n} values but steps has {n_epochs}: the per-epoch lists must have equal lengths",
            )
    if epochs is not None and n_epochs > epochs:
        raise fail(f"{at}.steps", f"{n_epochs} epochs listed but the run has epochs: {epochs}")
    steps = tuple(_count(v, f"{at}.steps[{e}]", fail) for e, v in enumerate(lists["steps"]))
    if steps_per_epoch is not None:
        for e, n in enumerate(steps):
            if n > steps_per_epoch:
                raise fail(
                    f"{at}.steps[{e}]", f"{n} steps but an epoch has {steps_per_epoch} (batches)"
                )
    fractions = tuple(
        _real(v, f"{at}.changed_fraction[{e}]", fail, 0.0, 1.0)
        for e, v in enumerate(lists["changed_fraction"])
    )
    for e, (f, n) in enumerate(zip(fractions, steps, strict=True)):
        if n == 0 and f != 0:
            raise fail(f"{at}.changed_fraction[{e}]", f"{f} in an epoch of 0 steps: must be 0")
    integer = levels.family == "int"
    top_level = 2**levels.bits - 1  # the largest |Δlevel| between two levels of this format
    mean_change: list[float | None] = []
    for e, v in enumerate(lists["mean_level_change"]):
        key = f"{at}.mean_level_change[{e}]"
        if not integer:
            if v is not None:
                raise fail(
                    key, f"must be null for {levels.name} levels (no level steps), got {v!r}"
                )
            mean_change.append(None)
            continue
        if v is None:
            raise fail(key, f"must be a number for {levels.name} levels, got null")
        change = _real(v, key, fail, 0.0, float(top_level))
        if fractions[e] > 0 and change < 1:
            raise fail(key, f"{change} < 1 where levels changed: a changed level moves by ≥ 1")
        if fractions[e] == 0 and change != 0:
            raise fail(key, f"{change} where no level changed: must be 0")
        mean_change.append(change)
    total = sum(steps)
    most = _count(raw["max_changes_per_weight"], f"{at}.max_changes_per_weight", fail)
    if most > total:
        raise fail(f"{at}.max_changes_per_weight", f"{most} changes in {total} measured steps")
    mean = _real(raw["mean_changes_per_weight"], f"{at}.mean_changes_per_weight", fail, 0.0)
    if mean > most:
        raise fail(f"{at}.mean_changes_per_weight", f"{mean} exceeds max_changes_per_weight {most}")
    expected = sum(f * n for f, n in zip(fractions, steps, strict=True))
    if not math.isclose(mean, expected, rel_tol=UPDATE_SPARSITY_RTOL, abs_tol=1e-9):
        raise fail(
            f"{at}.mean_changes_per_weight",
            f"{mean} but the per-epoch fractions give Σ changed_fraction·steps = {expected:.9g} "
            "(both count the same changes)",
        )
    return LayerUpdates(
        weights=weights,
        levels=levels.name,
        changed_fraction=fractions,
        mean_level_change=tuple(mean_change),
        steps=steps,
        max_changes_per_weight=most,
        mean_changes_per_weight=mean,
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
    update_sparsity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``workload.json`` document (format :data:`WORKLOAD_FORMAT`, version
    :data:`WORKLOAD_VERSION`), checked by :func:`workload_from_dict` before it is returned.

    ``batches`` is one epoch's ``[{batch_size, count}, ...]`` (empty: a single step, no run);
    ``optimizer`` is ``{name, state_tensors_per_weight}``; each layer has the keys of
    :class:`Layer` (``activation_sparsity``, ``stride``, ``padding``, ``groups`` optional), the
    four ``*_format`` keys included. ``update_sparsity``: the measured update sparsity
    (docs/workload.md, "Update sparsity"), written as the last key; ``None`` leaves it out.
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
    if update_sparsity is not None:
        document["update_sparsity"] = update_sparsity
    workload_from_dict(document, f"workload of {source.get('model') or 'a model'}")
    return document


def with_update_sparsity(
    document: dict[str, Any], update_sparsity: dict[str, Any] | None, where: str = "<workload>"
) -> dict[str, Any]:
    """A copy of the workload ``document`` with its ``update_sparsity`` set (the last key; any
    earlier value replaced; ``None`` removes it), checked by :func:`workload_from_dict`."""
    updated = {key: value for key, value in document.items() if key != "update_sparsity"}
    if update_sparsity is not None:
        updated["update_sparsity"] = update_sparsity
    workload_from_dict(updated, where)
    return updated
