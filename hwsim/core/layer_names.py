"""The one naming of weight layers, everywhere a layer is named (torch-free).

Linear layers are ``fc1, fc2, …`` and convolutions ``conv1, conv2, …``, each kind numbered from 1
in forward order. The same name appears in ``workload.json``, in ``metrics.jsonl``
(``alignment_deg``, ``update_angle_deg``), in ``metrics.csv``, in every analysis and report, and
in the workloads ``hwsim simulate --model`` builds. :func:`models.convert.layer_names` applies it
to a torch model; :mod:`hwsim.sim.model_specs` applies it to the layers a spec lists.

Run directories written before this naming named layers by their PyTorch module path (``'2'``,
``'4'``, … in an ``nn.Sequential``). :func:`legacy_renames` recognizes such names, and the readers
of a run (``models.training.read_metrics``, :func:`hwsim.core.workload.workload_from_dict` for
``training-run`` documents) map them to this naming, so old and new runs read alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["LAYER_PREFIX", "is_legacy_name", "legacy_renames", "stable_layer_names"]

#: Name prefix per workload layer kind (docs/workload.md, "Layers").
LAYER_PREFIX = {"linear": "fc", "conv2d": "conv"}

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
