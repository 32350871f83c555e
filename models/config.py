"""The training configuration: one frozen dataclass, validated, round-tripped through YAML."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.rules import parse_rule
from models.data import DATASETS
from models.feedback import FLOAT_BITS
from models.networks import ARCHITECTURES

OPTIMIZERS = ("sgd", "adam")
#: Python types a YAML/JSON value may have for each annotated field type (bool is not an int).
_ACCEPTED_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}
SCHEDULES = ("constant", "cosine", "step")


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
        object.__setattr__(self, "algo", parse_rule(self.algo).spec)
        checks = [
            (self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}"),
            (self.model in ARCHITECTURES, "model", f"one of {', '.join(ARCHITECTURES)}"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}"),
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", "a positive number"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "non-negative"),
            (self.forward_gain > 0, "forward_gain", "positive"),
            (self.backward_gain is None or self.backward_gain > 0, "backward_gain", "positive"),
            (self.update_angle_batches >= 0, "update_angle_batches", "non-negative"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise InputError(
                    f"config key {key!r} = {getattr(self, key)!r}: expected {expected}"
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
        return cls(**raw)
