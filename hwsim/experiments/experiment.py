"""Experiment YAML: what `hwsim compare` trains and on which chips (versioned, validated).

An experiment file (``configs/experiments/*.yaml``) has ``version: 1`` and the sections below;
every key is optional except ``version`` and defaults to the value shown by
:data:`DEFAULT_SECTIONS`. Unknown keys and wrong types are reported all at once, each with the
file, the key path and its line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.resources import DEFAULT_COMPARE_CHIP, DEFAULT_EXPERIMENT
from hwsim.core.rules import parse_rules
from hwsim.core.yaml_lines import KeyPath, load_yaml_with_lines
from hwsim.sim.chip import resolve_chip

EXPERIMENT_VERSION = 1

_NONE = type(None)
#: section → key → (accepted types, default). Keys map 1:1 onto models.TrainConfig fields,
#: except ``dataset.name`` (→ ``dataset``) and ``network.model``.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "dataset": {
        "name": ((str,), "mnist5k"),
        "data_dir": ((str, _NONE), None),
        "train_size": ((int, _NONE), None),
    },
    "network": {
        "model": ((str,), "mlp"),
        "depth": ((int, _NONE), None),
        "width": ((int, _NONE), None),
    },
    "quantization": {
        "weight_bits": ((int,), 32),
        "act_bits": ((int,), 32),
        "feedback_bits": ((int, _NONE), None),
    },
    "training": {
        "epochs": ((int,), 10),
        "batch_size": ((int,), 64),
        "optimizer": ((str,), "adam"),
        "lr": ((int, float), 1e-3),
        "momentum": ((int, float), 0.9),
        "weight_decay": ((int, float), 0.0),
        "schedule": ((str,), "constant"),
        "forward_gain": ((int, float), 2**0.5),
        "backward_gain": ((int, float, _NONE), None),
    },
}
TOP_KEYS = {"version", "name", "description", "seeds", "rules", "chips", *SCHEMA}


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: training settings, seeds, rules and chip files."""

    name: str
    description: str
    settings: dict[str, dict[str, Any]]
    seeds: tuple[int, ...]
    rules: tuple[str, ...]
    chips: tuple[Path, ...]
    path: Path | None = None

    def train_config(self, rule: str, seed: int):  # -> models.TrainConfig (torch import is lazy)
        """The :class:`models.TrainConfig` of one rule and seed."""
        from models.config import TrainConfig

        s = self.settings
        return TrainConfig(
            algo=rule,
            dataset=s["dataset"]["name"],
            data_dir=s["dataset"]["data_dir"],
            train_size=s["dataset"]["train_size"],
            model=s["network"]["model"],
            depth=s["network"]["depth"],
            width=s["network"]["width"],
            seed=seed,
            **s["quantization"],
            **s["training"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment as it is written to ``experiment.yaml``."""
        return {
            "version": EXPERIMENT_VERSION,
            "name": self.name,
            "description": self.description,
            **copy.deepcopy(self.settings),
            "seeds": list(self.seeds),
            "rules": list(self.rules),
            "chips": [str(c) for c in self.chips],
        }

    def with_overrides(
        self,
        *,
        rules: str | None = None,
        chips: list[str] | None = None,
        dataset: str | None = None,
        epochs: int | None = None,
        seed: int | None = None,
    ) -> Experiment:
        """A copy with CLI options applied (each validated like the file's own values)."""
        settings = copy.deepcopy(self.settings)
        if dataset is not None:
            settings["dataset"]["name"] = dataset
        if epochs is not None:
            settings["training"]["epochs"] = epochs
        return Experiment(
            name=self.name,
            description=self.description,
            settings=settings,
            seeds=(seed,) if seed is not None else self.seeds,
            rules=tuple(r.spec for r in parse_rules(rules)) if rules is not None else self.rules,
            chips=tuple(resolve_chip(c) for c in chips) if chips else self.chips,
            path=self.path,
        )


def load_experiment(path: str | Path = DEFAULT_EXPERIMENT) -> Experiment:
    """Read and validate an experiment YAML file, reporting every problem with its line."""
    path = Path(path)
    data, lines = load_yaml_with_lines(path)
    problems: list[str] = []

    def problem(key: KeyPath, message: str) -> None:
        line = lines.get(key) or lines.get(key[:-1]) or 1
        dotted = ".".join(str(k) for k in key) or "(top level)"
        problems.append(f"{path}:{line}: {dotted}: {message}")

    if not isinstance(data, dict):
        raise InputError(f"{path}:1: expected a mapping with 'version: {EXPERIMENT_VERSION}'")
    for key in sorted(set(data) - TOP_KEYS, key=str):
        problem((key,), f"unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
    if "version" not in data:
        problem(("version",), f"missing; expected version: {EXPERIMENT_VERSION}")
    elif data["version"] != EXPERIMENT_VERSION:
        problem(("version",), f"unsupported version {data['version']!r}; expected 1")

    settings: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            problem((section,), "expected a mapping")
            given = {}
        for key in sorted(set(given) - set(keys), key=str):
            problem((section, key), f"unknown key (expected one of {', '.join(keys)})")
        settings[section] = {}
        for key, (types, default) in keys.items():
            value = given.get(key, default)
            if isinstance(value, bool) or not isinstance(value, types):
                names = " or ".join("null" if t is _NONE else t.__name__ for t in types)
                problem((section, key), f"expected {names}, got {value!r}")
            settings[section][key] = value

    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        problem(("seeds",), f"expected a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    rules_raw = data.get("rules", ["bp", "fa", "ifa"])
    rules: tuple[str, ...] = ()
    try:
        if not isinstance(rules_raw, list):
            raise InputError(f"expected a list of rule specs, got {rules_raw!r}")
        rules = tuple(r.spec for r in parse_rules([str(r) for r in rules_raw]))
    except InputError as exc:
        problem(("rules",), str(exc))
    chips_raw = data.get("chips", [DEFAULT_COMPARE_CHIP.stem])
    chips: list[Path] = []
    if not isinstance(chips_raw, list) or not chips_raw:
        problem(("chips",), f"expected a non-empty list of chip files, got {chips_raw!r}")
    else:
        for i, c in enumerate(chips_raw):
            try:
                chips.append(resolve_chip(str(c), base=path.parent))
            except InputError as exc:
                problem(("chips", i), str(exc))
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            problem((key,), f"expected a string, got {data[key]!r}")
    if problems:
        raise InputError("invalid experiment file:\n  " + "\n  ".join(problems))

    experiment = Experiment(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        settings=settings,
        seeds=tuple(seeds),
        rules=rules,
        chips=tuple(chips),
        path=path.resolve(),
    )
    try:
        experiment.train_config(rules[0], seeds[0])  # value checks (ranges, names)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return experiment
