"""The training configuration: one frozen dataclass, validated, round-tripped through YAML."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.rules import RULE_SYNTAX, parse_rule
from hwsim.core.units import FLOAT_BITS

# What a config may name, here rather than beside the code that builds it (hwsim.models.data,
# hwsim.models.networks): validating a config, or an experiment file, must not import torch.
#: Datasets :func:`hwsim.models.data.load_dataset` knows.
DATASETS = ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "synthetic")
MIN_TRAIN_SIZE, MAX_TRAIN_SIZE = 100, 50_000
#: Networks :func:`hwsim.models.networks.build_network` builds, and their depths (weight layers).
ARCHITECTURES = ("mlp", "cnn")
MIN_DEPTH, MAX_DEPTH = 2, 10

OPTIMIZERS = ("sgd", "adam")
#: Python types a YAML/JSON value may have for each annotated field type (bool is not an int).
_ACCEPTED_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}
SCHEDULES = ("constant", "cosine", "step")

#: Ranges of the numeric settings (docs/learning.md, "Configuration ranges"). Bit widths: 32 is
#: float; brevitas quantizes weights and activations at 2..16 bits (models/networks.py), B is
#: stored at 1 (sign) ..16 bits (models/feedback.py). Seeds: torch takes 64-bit seeds, and the
#: batch order uses ``seed * 100_003 + epoch``, so seeds are kept to 32 bits.
MAX_WIDTH = 8192
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_SEED = 2**32 - 1
MAX_UPDATE_ANGLE_BATCHES = 1_000
QUANT_BITS = (2, 16)
FEEDBACK_BITS = (1, 16)


def _int_in(value: Any, low: int, high: int, optional: bool = False) -> bool:
    if value is None:
        return optional
    return type(value) is int and low <= value <= high


def _number(value: Any, *, low: float = -math.inf, positive: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    value = float(value)
    return math.isfinite(value) and value >= low and (value > 0 or not positive)


def _bits(value: Any, low: int, high: int) -> bool:
    return type(value) is int and (value == FLOAT_BITS or low <= value <= high)


def config_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, expected)`` for every setting of ``values`` (TrainConfig field → value) that a
    :class:`TrainConfig` refuses; keys not given are not checked. The one range check of the
    training settings: ``TrainConfig``, ``hwsim train`` and the experiment loader all use it.
    """
    model = values.get("model", "mlp")
    is_cnn = model == "cnn"
    checks: dict[str, tuple[Any, str]] = {
        "algo": (lambda v: isinstance(v, str), f"a rule: {RULE_SYNTAX}"),
        "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
        "model": (lambda v: v in ARCHITECTURES, f"one of {', '.join(ARCHITECTURES)}"),
        "depth": (
            (lambda v: v is None, "null (the cnn has 4 weight layers)")
            if is_cnn
            else (
                lambda v: _int_in(v, MIN_DEPTH, MAX_DEPTH, optional=True),
                f"an integer {MIN_DEPTH}..{MAX_DEPTH} (weight layers) or null (4)",
            )
        ),
        "width": (
            lambda v: _int_in(v, 1, MAX_WIDTH, optional=True),
            f"an integer 1..{MAX_WIDTH} or null ({'32 base channels' if is_cnn else '256'})",
        ),
        "epochs": (lambda v: _int_in(v, 1, MAX_EPOCHS), f"an integer 1..{MAX_EPOCHS}"),
        "batch_size": (
            lambda v: _int_in(v, 1, MAX_BATCH_SIZE),
            f"an integer 1..{MAX_BATCH_SIZE}",
        ),
        "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        "lr": (lambda v: _number(v, positive=True), "a finite number > 0"),
        "momentum": (lambda v: _number(v, low=0) and v < 1, "a number in [0, 1)"),
        "weight_decay": (lambda v: _number(v, low=0), "a finite number >= 0"),
        "schedule": (lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        "weight_bits": (lambda v: _bits(v, *QUANT_BITS), "32 (float) or an integer 2..16"),
        "act_bits": (lambda v: _bits(v, *QUANT_BITS), "32 (float) or an integer 2..16"),
        "feedback_bits": (
            lambda v: v is None or _bits(v, *FEEDBACK_BITS),
            "32 (float), an integer 1..16 (1 = sign) or null (= weight_bits)",
        ),
        "forward_gain": (lambda v: _number(v, positive=True), "a finite number > 0"),
        "backward_gain": (
            lambda v: v is None or _number(v, positive=True),
            "a finite number > 0 or null (the scale of W)",
        ),
        "train_size": (
            lambda v: _int_in(v, MIN_TRAIN_SIZE, MAX_TRAIN_SIZE, optional=True),
            f"an integer {MIN_TRAIN_SIZE}..{MAX_TRAIN_SIZE} or null (all)",
        ),
        "seed": (lambda v: _int_in(v, 0, MAX_SEED), f"an integer 0..{MAX_SEED} (2^32 - 1)"),
        "data_seed": (lambda v: _int_in(v, 0, MAX_SEED), f"an integer 0..{MAX_SEED} (2^32 - 1)"),
        "data_dir": (lambda v: v is None or isinstance(v, str), "a folder name or null"),
        "update_angle_batches": (
            lambda v: _int_in(v, 0, MAX_UPDATE_ANGLE_BATCHES),
            f"an integer 0..{MAX_UPDATE_ANGLE_BATCHES}",
        ),
        "snapshots": (lambda v: isinstance(v, bool), "true or false"),
    }
    problems = []
    for key, (ok, expected) in checks.items():
        if key in values and not ok(values[key]):
            problems.append((key, expected))
        elif key == "algo" and key in values:
            try:
                parse_rule(values[key])
            except InputError as exc:
                problems.append((key, str(exc)))
    return problems


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (same config, same seed → same metrics).

    Defaults were chosen by measurement (see docs/learning.md): Adam at 1e-3 trains BP, FA and
    IFA stably at depth 2–10, where SGD with momentum lets FA/IFA lose alignment or diverge.
    Bit widths of 32 mean float; ``feedback_bits`` None means "same as ``weight_bits``".
    """

    algo: str = "bp"
    dataset: str = "mnist5k"
    model: str = "mlp"
    depth: int | None = None
    width: int | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    weight_bits: int = FLOAT_BITS
    act_bits: int = FLOAT_BITS
    feedback_bits: int | None = None
    forward_gain: float = math.sqrt(2.0)
    backward_gain: float | None = None
    train_size: int | None = None
    seed: int = 0
    data_seed: int = 0
    data_dir: str | None = None
    update_angle_batches: int = 2
    snapshots: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.algo, str):
            object.__setattr__(self, "algo", parse_rule(self.algo).spec)
        problems = config_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise InputError(
                "; ".join(
                    f"config key {key!r} = {getattr(self, key)!r}: expected {expected}"
                    for key, expected in problems
                )
            )

    @property
    def effective_feedback_bits(self) -> int:
        """Bit width ``B`` is stored at: ``feedback_bits``, or ``weight_bits`` when unset."""
        return self.weight_bits if self.feedback_bits is None else self.feedback_bits

    @property
    def quantized(self) -> bool:
        """True when weights or activations are quantized (brevitas layers)."""
        return self.weight_bits != FLOAT_BITS or self.act_bits != FLOAT_BITS

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, in field order (what ``config.yaml`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a dict; unknown keys, wrong types: :class:`InputError` naming ``source``."""
        if not isinstance(raw, dict):
            raise InputError(f"{source}: expected a mapping of training settings")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise InputError(f"{source}: unknown key(s) {', '.join(unknown)}")
        for key, value in raw.items():
            kind = known[key].type
            if value is None and "None" in str(kind):
                continue
            base = kind.split(" | ")[0]
            wanted = _ACCEPTED_TYPES[base]
            if isinstance(value, bool) != (wanted == (bool,)) or not isinstance(value, wanted):
                raise InputError(f"{source}: key {key!r} = {value!r}: expected {kind}")
        try:
            return cls(**raw)
        except InputError as exc:  # a range: name the file too
            raise InputError(f"{source}: {exc}") from None
