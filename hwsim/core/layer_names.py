"""The one naming of weight layers, everywhere a layer is named (torch-free).

Linear layers are ``fc1, fc2, …`` and convolutions ``conv1, conv2, …``, each kind numbered from 1
in forward order. The same name appears in ``workload.json``, in ``metrics.jsonl``
(``alignment_deg``, ``update_angle_deg``), in ``metrics.csv``, in every analysis and report, and
in the workloads ``hwsim simulate --model`` builds. :func:`hwsim.models.convert.layer_names`
applies it to a torch model; :mod:`hwsim.sim.model_specs` applies it to the layers a spec lists.

Run directories written before this naming named layers by their PyTorch module path (``'2'``,
``'4'``, … in an ``nn.Sequential``). :func:`legacy_renames` recognizes such names, and the readers
of a run (``hwsim.models.training.read_metrics``, :func:`hwsim.core.workload.workload_from_dict` for
``training-run`` documents) map them to this naming, so old and new runs read alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LAYER_KEYED",
    "LAYER_PREFIX",
    "is_legacy_name",
    "legacy_layer_renames",
    "legacy_renames",
    "rename_layer_keys",
    "run_layer_renames",
    "stable_layer_names",
]

#: Name prefix per workload layer kind (docs/workload.md, "Layers").
LAYER_PREFIX = {"linear": "fc", "conv2d": "conv"}

#: The keys of a ``metrics.jsonl`` row that map layer names to values.
LAYER_KEYED = ("alignment_deg", "update_angle_deg")

#: A PyTorch module path of an ``nn.Sequential`` (``'2'``, ``'0.1'``): how runs were named before.
_LEGACY = re.compile(r"\d+(\.\d+)*")


def stable_layer_names(kinds: Sequence[str]) -> list[str]:
    """The name of each layer of ``kinds`` (``linear`` or ``conv2d``, in forward order).

    >>> stable_layer_names(["conv2d", "conv2d", "linear", "linear"])
    ['conv1', 'conv2', 'fc1', 'fc2']

    An unknown kind is a :class:`ValueError` (the workload reader rejects such layers first).
    """
    counts: dict[str, int] = {}
    names = []
    for kind in kinds:
        prefix = LAYER_PREFIX.get(kind)
        if prefix is None:
            raise ValueError(f"unknown layer kind {kind!r}: expected one of {sorted(LAYER_PREFIX)}")
        counts[prefix] = counts.get(prefix, 0) + 1
        names.append(f"{prefix}{counts[prefix]}")
    return names


def is_legacy_name(name: str) -> bool:
    """True for a PyTorch module path of digits (``'2'``, ``'0.1'``): a pre-naming run's name."""
    return _LEGACY.fullmatch(name) is not None


def legacy_renames(names: Sequence[str], kinds: Sequence[str]) -> dict[str, str]:
    """``{old: new}`` for a run written before the stable naming, else ``{}``.

    ``names`` and ``kinds`` are a run's layers in forward order (its ``workload.json``). They
    are renamed only when every name is a legacy module path (:func:`is_legacy_name`), the names
    are distinct and every kind is known: names someone chose (a workload written by hand) stay.
    """
    if len(names) != len(kinds) or len(set(names)) != len(names):
        return {}
    if not names or not all(is_legacy_name(n) for n in names):
        return {}
    if any(kind not in LAYER_PREFIX for kind in kinds):
        return {}
    return dict(zip(names, stable_layer_names(kinds), strict=True))


def legacy_layer_renames(data: Any) -> dict[str, str]:
    """``{old: new}`` layer names of a training run's workload document written before the
    stable naming (:mod:`hwsim.core.layer_names`: module paths ``'2'``, ``'4'`` become ``fc1``,
    ``fc2``); ``{}`` for anything else (a current document, a model spec, names chosen by hand,
    a document too broken to tell).

    The workload reader applies it (:func:`hwsim.core.workload.workload_from_dict`), and the
    readers of a run's ``metrics.jsonl`` apply :func:`run_layer_renames`, so a run from before
    the change reads with the names of a new one.
    """
    if not isinstance(data, dict):
        return {}
    source = data.get("source")
    if not isinstance(source, dict) or source.get("kind") != "training-run":
        return {}
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not all(isinstance(r, dict) for r in raw_layers):
        return {}
    names = [r.get("name") for r in raw_layers]
    kinds = [r.get("kind") for r in raw_layers]
    if not all(isinstance(n, str) for n in names) or not all(isinstance(k, str) for k in kinds):
        return {}
    return legacy_renames(names, kinds)


def run_layer_renames(run_dir: str | Path) -> dict[str, str]:
    """``{old: new}`` layer names of a run directory written before the stable naming, read
    from its ``workload.json`` (:func:`legacy_layer_renames`); ``{}`` otherwise, and when
    ``workload.json`` is missing or unreadable (the names are then left as they are)."""
    try:
        document = json.loads((Path(run_dir) / "workload.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return legacy_layer_renames(document)


def rename_layer_keys(
    rows: Iterable[dict[str, Any]], renames: dict[str, str], keys: Sequence[str] = LAYER_KEYED
) -> None:
    """Rename, in place, the layer keys of each row's ``keys`` objects (``alignment_deg``,
    ``update_angle_deg``) by ``renames``; other keys, and values that are not objects, stay."""
    if not renames:
        return
    for row in rows:
        for key in keys:
            layers = row.get(key)
            if isinstance(layers, dict):
                row[key] = {renames.get(name, name): value for name, value in layers.items()}
