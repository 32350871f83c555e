"""Experiment YAML: what `hwsim compare` trains and on which chips (versioned, validated).

An experiment file (``configs/experiments/*.yaml``) has ``version: 1`` and the sections of
:data:`hwsim.core.defaults.SCHEMA`; every key is optional except ``version``. A training key
left out takes the default experiment's value (``configs/experiments/default.yaml``,
docs/learning.md "The default experiment"; :func:`_fallback` has the two exceptions); seeds
default to ``[0]``, rules to ``[bp, fa, ifa]``, chips to ``split_cores``. Unknown keys and wrong
types are reported all at once, each with the file, the key path and its line.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.defaults import FIELD_KEYS, SCHEMA, default_settings
from hwsim.core.errors import InputError
from hwsim.core.resources import (
    DEFAULT_COMPARE_CHIP,
    DEFAULT_EXPERIMENT,
    EXPERIMENTS_DIR,
    shipped_chip_name,
    shipped_experiment_names,
)
from hwsim.core.rules import RULE_SYNTAX, parse_rules, rule_dirname
from hwsim.core.yaml_lines import KeyPath, load_yaml_with_lines
from hwsim.sim.chip import resolve_chip

EXPERIMENT_VERSION = 1
#: An experiment name: it names the default output folder (``reports/compare-<name>``).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_NONE = type(None)
TOP_KEYS = {"version", "name", "description", "seeds", "rules", "chips", *SCHEMA}


def default_train_config(**changes: Any):  # -> hwsim.models.TrainConfig (torch import is lazy)
    """The default experiment's :class:`hwsim.models.TrainConfig` (rule ``bp``, its first seed),
    with ``changes`` applied: what ``hwsim train`` builds when given no options."""
    from hwsim.models.config import TrainConfig

    settings = default_settings()
    values = {k: v for k, v in settings.items() if k != "seeds"}
    values["seed"] = settings["seeds"][0]
    return TrainConfig(**{**values, **changes})


def _setting_problems(
    settings: dict[str, dict[str, Any]], skip: frozenset[KeyPath] = frozenset()
) -> list[tuple[KeyPath, str]]:
    """``(key path, problem)`` for every setting ``hwsim.models.TrainConfig`` would refuse
    (keys in ``skip`` were already reported)."""
    from hwsim.models.config import config_problems  # torch is imported lazily

    missing = [
        (key, "missing")
        for key in FIELD_KEYS.values()
        if not isinstance(settings.get(key[0]), dict) or key[1] not in settings[key[0]]
    ]
    values = {
        field: settings[key[0]][key[1]]
        for field, key in FIELD_KEYS.items()
        if key not in skip and (key, "missing") not in missing
    }
    return missing + [
        (FIELD_KEYS[field], f"{_short(values[field])}: expected {expected}")
        for field, expected in config_problems(values)
    ]


def _seed_problem(seed: Any) -> str | None:
    from hwsim.models.config import config_problems

    problems = config_problems({"seed": seed})
    return f"{seed!r}: expected {problems[0][1]}" if problems else None


def _chip_problem(name: Any, base: Path | None) -> tuple[Path | None, str | None]:
    """The chip file ``name`` names, loaded and validated, or the problem with it."""
    from hwsim.sim.chip import load_chip

    if not isinstance(name, str) or not name:
        return None, f"expected a chip file or shipped chip name, got {_short(name)}"
    try:
        path = resolve_chip(name, base=base)
        load_chip(path)
    except InputError as exc:
        return None, str(exc)
    except (OSError, ValueError) as exc:  # a name too long for a path, a NUL byte
        return None, f"chip file {name[:60]!r} cannot be opened ({exc})"
    return path, None


def _chip_reference(chip: Path, base: Path | None) -> str:
    """How ``experiment.yaml`` names a chip file: a shipped chip by name, another file
    relative to ``base`` (absolute without one)."""
    import os

    name = shipped_chip_name(chip)
    if name is not None:
        return name
    if base is None:
        return str(chip)
    return Path(os.path.relpath(Path(chip).resolve(), Path(base).resolve())).as_posix()


def resolve_experiment(name: str | Path) -> Path:
    """An experiment file: the path as given when it is a file, else a shipped experiment by
    name (``rules`` or ``rules.yaml`` → ``configs/experiments/rules.yaml``), from any folder."""
    path = Path(name)
    if path.is_file() or path.parent != Path("."):
        return path
    shipped = EXPERIMENTS_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    raise InputError(
        f"--experiment {name}: no such file, and no shipped experiment of that name (shipped "
        f"experiments: {', '.join(shipped_experiment_names())})"
    )


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

    def __post_init__(self) -> None:
        """Refuse what training would refuse later (ranges, names, seeds, rules), up front."""
        where = f"{self.path}: " if self.path is not None else f"experiment {self.name!r}: "
        problems = [f"{'.'.join(k)}: {p}" for k, p in _setting_problems(self.settings)]
        problems += [f"seeds: {p}" for p in map(_seed_problem, self.seeds) if p is not None]
        if not self.seeds:
            problems.append("seeds: expected at least one seed")
        if not self.rules:
            problems.append("rules: expected at least one rule")
        if not self.chips:
            problems.append("chips: expected at least one chip file")
        try:
            parse_rules(list(self.rules))
        except InputError as exc:
            problems.append(f"rules: {exc}")
        if problems:
            raise InputError(where + "; ".join(problems))

    def train_config(
        self, rule: str, seed: int
    ):  # -> hwsim.models.TrainConfig (torch import is lazy)
        """The :class:`hwsim.models.TrainConfig` of one rule and seed."""
        from hwsim.models.config import TrainConfig

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

    def training_identity(self) -> dict[str, Any]:
        """What determines every training run but the rule and seed: the dataset, network,
        quantization and training sections. Chips, rules, seeds, name and description do not."""
        return training_identity(self.to_dict())

    def run_key(self, rule: str, seed: int) -> str:
        """A short hash of everything that determines the training run of ``rule`` and ``seed``
        (:meth:`training_identity` with them): two runs with the same key train the same
        numbers, so a finished one is reused. Device, threads and workers are not in it."""
        document = {"settings": self.training_identity(), "rule": rule, "seed": seed}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:RUN_KEY_CHARS]

    def run_dir_name(self, rule: str, seed: int) -> str:
        """The directory of that run inside a compare run: ``runs/<rule>-seed<k>-<key>``."""
        return f"{rule_dirname(rule)}-seed{seed}-{self.run_key(rule, seed)}"

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        """The resolved experiment as it is written to ``experiment.yaml``: a shipped chip by
        its name, any other chip file relative to ``base`` (the folder the file is written in,
        where :func:`load_experiment` resolves it again), so that no machine's absolute path
        is stored; without ``base``, another chip file is named by its absolute path."""
        return {
            "version": EXPERIMENT_VERSION,
            "name": self.name,
            "description": self.description,
            **copy.deepcopy(self.settings),
            "seeds": list(self.seeds),
            "rules": list(self.rules),
            "chips": [_chip_reference(c, base) for c in self.chips],
        }

    def with_overrides(
        self,
        *,
        rules: str | None = None,
        chips: list[str] | None = None,
        dataset: str | None = None,
        data_dir: str | None = None,
        epochs: int | None = None,
        seed: int | None = None,
        seeds: tuple[int, ...] | None = None,
    ) -> Experiment:
        """A copy with CLI options applied (each validated like the file's own values).

        A bad option is an :class:`InputError` naming the option (``--epochs 0: expected…``).
        """
        from hwsim.models.config import config_problems

        problems: list[str] = []
        for option, field, value in (
            ("--dataset", "dataset", dataset),
            ("--epochs", "epochs", epochs),
            ("--seed", "seed", seed),
        ):
            for _, expected in config_problems({field: value}) if value is not None else []:
                problems.append(f"{option} {value}: expected {expected}")
        for value in seeds or ():
            for _, expected in config_problems({"seed": value}):
                problems.append(f"--seeds {value}: expected {expected}")
        if seeds is not None and len(set(seeds)) != len(seeds):
            problems.append(f"--seeds {','.join(map(str, seeds))}: a seed is given twice")
        if seed is not None and seeds is not None:
            problems.append("--seed and --seeds: give one of them")
        parsed_rules = self.rules
        if rules is not None:
            try:
                parsed_rules = tuple(r.spec for r in parse_rules(rules))
            except InputError as exc:
                problems.append(f"--algo {rules}: {exc}")
        chip_paths = list(self.chips)
        if chips:
            chip_paths = []
            for c in chips:
                found, problem = _chip_problem(c, None)
                if problem is not None:
                    problems.append(f"--chip {c}: {problem}")
                elif found is not None:
                    chip_paths.append(found)
        if problems:
            raise InputError("; ".join(problems))
        settings = copy.deepcopy(self.settings)
        if dataset is not None:
            settings["dataset"]["name"] = dataset
        if data_dir is not None:
            settings["dataset"]["data_dir"] = data_dir
        if epochs is not None:
            settings["training"]["epochs"] = epochs
        return Experiment(
            name=self.name,
            description=self.description,
            settings=settings,
            seeds=(seed,) if seed is not None else tuple(seeds) if seeds else self.seeds,
            rules=parsed_rules,
            chips=tuple(chip_paths),
            path=self.path,
        )


#: Hex digits of a run key: collisions among the runs of one compare directory are negligible.
RUN_KEY_CHARS = 8


def training_identity(document: Any) -> dict[str, Any]:
    """The training sections (:data:`SCHEMA`) of an experiment document (``experiment.yaml``
    as loaded); a section that is missing or no mapping reads as None."""
    if not isinstance(document, dict):
        return {section: None for section in SCHEMA}
    return {section: copy.deepcopy(document.get(section)) for section in SCHEMA}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _fallback(section: str, key: str, data: dict[str, Any]) -> Any:
    """The value of a training key an experiment file leaves out: the default experiment's
    (docs/learning.md, "The default experiment"), except ``feedback_bits`` (null: the weights'
    width, which the file may have changed) and, for another model than the default's, its
    ``depth`` and ``width`` (null: that model's own)."""
    defaults = default_settings()
    field = "dataset" if (section, key) == ("dataset", "name") else key
    if field == "feedback_bits":
        return None
    if field in ("depth", "width"):
        network = data.get("network")
        model = network.get("model", defaults["model"]) if isinstance(network, dict) else None
        return defaults[field] if model in (None, defaults["model"]) else None
    return defaults[field]


def load_experiment(path: str | Path = DEFAULT_EXPERIMENT) -> Experiment:
    """Read and validate an experiment YAML file, reporting every problem with its line.

    ``path`` may name a shipped experiment (``rules``) instead, as :func:`resolve_experiment`.
    """
    path = resolve_experiment(path)
    data, lines = load_yaml_with_lines(path)
    problems: list[tuple[int, str]] = []

    def problem(key: KeyPath, message: str) -> None:
        line = lines.get(key) or lines.get(key[:-1]) or 1
        dotted = ".".join(str(k) for k in key) or "(top level)"
        message = message.replace("\n", "\n    ")  # a chip file's own problem list
        problems.append((line, f"{path}:{line}: {dotted}: {message}"))

    if not isinstance(data, dict):
        raise InputError(f"{path}:1: expected a mapping with 'version: {EXPERIMENT_VERSION}'")
    for key in sorted(set(data) - TOP_KEYS, key=str):
        problem((key,), f"unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
    if "version" not in data:
        problem(("version",), f"missing; expected version: {EXPERIMENT_VERSION}")
    elif type(data["version"]) is not int or data["version"] != EXPERIMENT_VERSION:
        problem(("version",), f"unsupported version {_short(data['version'])}; expected 1")

    settings: dict[str, dict[str, Any]] = {}
    mistyped: set[KeyPath] = set()
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            problem((section,), "expected a mapping")
            given = {}
        for key in sorted(set(given) - set(keys), key=str):
            problem((section, key), f"unknown key (expected one of {', '.join(keys)})")
        settings[section] = {}
        for key, (types, _) in keys.items():
            value = given.get(key, _fallback(section, key, data))
            if isinstance(value, bool) or not isinstance(value, types):
                names = " or ".join("null" if t is _NONE else t.__name__ for t in types)
                problem((section, key), f"expected {names}, got {_short(value)}")
                mistyped.add((section, key))
            settings[section][key] = value

    for key, message in _setting_problems(settings, frozenset(mistyped)):
        problem(key, message)

    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        problem(("seeds",), f"expected a non-empty list of integers, got {_short(seeds)}")
        seeds = [0]
    for i, seed in enumerate(seeds):
        seed_problem = _seed_problem(seed)
        if seed_problem is not None:
            problem(("seeds", i), seed_problem)
    if len(set(seeds)) != len(seeds):
        problem(("seeds",), f"a seed is given twice: {seeds!r}")
    rules_raw = data.get("rules", ["bp", "fa", "ifa"])
    rules: list[str] = []
    if not isinstance(rules_raw, list) or not rules_raw:
        problem(("rules",), f"expected a non-empty list of rule specs, got {_short(rules_raw)}")
    else:
        for i, r in enumerate(rules_raw):
            try:
                if not isinstance(r, str):
                    raise InputError(f"expected a rule spec ({RULE_SYNTAX}), got {r!r}")
                rules.append(parse_rules([r])[0].spec)
            except InputError as exc:
                problem(("rules", i), str(exc))
        if len(set(rules)) != len(rules):
            problem(("rules",), f"a rule is given twice: {', '.join(rules)}")
    chips_raw = data.get("chips", [DEFAULT_COMPARE_CHIP.stem])
    chips: list[Path] = []
    if not isinstance(chips_raw, list) or not chips_raw:
        problem(("chips",), f"expected a non-empty list of chip files, got {_short(chips_raw)}")
    else:
        for i, c in enumerate(chips_raw):
            found, chip_problem = _chip_problem(c, path.parent)
            if chip_problem is not None:
                problem(("chips", i), chip_problem)
            elif found is not None:
                chips.append(found)
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            problem((key,), f"expected a string, got {_short(data[key])}")
    if isinstance(data.get("name"), str) and not _NAME.fullmatch(data["name"]):
        problem(
            ("name",),
            f"{_short(data['name'])}: expected 1-100 letters, digits, '.', '_', '-'"
            " (it names the default output folder compare-<name>)",
        )
    if problems:
        problems.sort(key=lambda p: p[0])  # stable: same-line problems keep their order
        raise InputError("invalid experiment file:\n  " + "\n  ".join(p for _, p in problems))

    experiment = Experiment(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        settings=settings,
        seeds=tuple(seeds),
        rules=tuple(rules),
        chips=tuple(chips),
        path=path.resolve(),
    )
    return experiment
