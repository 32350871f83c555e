"""The training defaults: the built-in default experiment, read without torch.

``configs/experiments/default.yaml`` (:data:`hwsim.core.resources.DEFAULT_EXPERIMENT`) is the
one set of training defaults (docs/learning.md, "The default experiment"): ``hwsim compare``
runs it, and ``hwsim train``, ``hwsim sweep`` and ``hwsim reproduce`` take their defaults from
it through :func:`default_settings`, which the command line can call at start-up (it loads
neither torch nor the experiments layer). :data:`SCHEMA` is the experiment file's training
sections (:mod:`hwsim.experiments.experiment` validates files against it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.resources import DEFAULT_EXPERIMENT
from hwsim.core.yaml_lines import KeyPath, load_yaml_with_lines

__all__ = ["FIELD_KEYS", "SCHEMA", "default_settings"]

_NONE = type(None)
#: section → key → (accepted types, last resort). Keys map 1:1 onto hwsim.models.TrainConfig fields,
#: except ``dataset.name`` (→ ``dataset``) and ``network.model``. A key an experiment file leaves
#: out takes the default experiment's value; the last resort only fills a key that the default
#: experiment itself leaves out (``data_dir``, ``train_size``, ``momentum``, ``weight_decay``).
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
#: TrainConfig field → the experiment key that sets it.
FIELD_KEYS: dict[str, KeyPath] = {
    ("dataset" if (section, key) == ("dataset", "name") else key): (section, key)
    for section, keys in SCHEMA.items()
    for key in keys
}


def default_settings() -> dict[str, Any]:
    """The default experiment's training settings as ``TrainConfig`` field → value, plus
    ``seeds`` (a tuple of ints): a fresh dict each call.

    Keys the file leaves out take :data:`SCHEMA`'s fallback. The ranges are checked where a
    ``TrainConfig`` is built from these values (a test loads the file with the validating
    loader, :func:`hwsim.experiments.experiment.load_experiment`, and compares).
    """
    return dict(_default_settings())


@functools.cache
def _default_settings() -> dict[str, Any]:
    data, _ = load_yaml_with_lines(Path(DEFAULT_EXPERIMENT))
    if not isinstance(data, dict):
        raise InputError(f"{DEFAULT_EXPERIMENT}:1: expected a mapping")
    settings: dict[str, Any] = {}
    for field, (section, key) in FIELD_KEYS.items():
        given = data.get(section)
        fallback = SCHEMA[section][key][1]
        settings[field] = given.get(key, fallback) if isinstance(given, dict) else fallback
    settings["seeds"] = tuple(data.get("seeds", [0]))
    return settings
