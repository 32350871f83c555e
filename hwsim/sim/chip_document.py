"""The chip document before validation: ``extends:`` resolved, ``--set`` overrides applied.

A chip YAML file may start from another chip and give only what differs::

    version: 1
    extends: edge_sram            # a shipped chip, or a file: ../chips/base.yaml
    name: edge_cheap_sram
    memories:
      weight_sram: {read_energy_pj: 53}
      dram: null                  # null deletes an inherited key

Merge rule (:func:`merge`): mappings merge key by key, recursively; any other value (a number,
a string, a list) replaces the inherited one; ``null`` deletes the inherited key (deleting a key
the parent lacks is an error, it is a typo). Inherited keys keep the parent's order and new keys
follow them, so a new memory level goes after (outward of) the inherited ones. Chains work
(A extends B extends C); a cycle is an error naming the files. A chip that extends another must
give its own ``name`` (two chips of one name would be confused in reports and comparisons).

Overrides (:func:`apply_overrides`) are ``key.path=value`` strings (``hwsim simulate --set``),
applied after ``extends`` in the order given; the value is read as YAML (``2``, ``dram``,
``[weights]``, ``{int8: 0.2}``; ``null`` or nothing deletes the key).

Every key path of the resulting document keeps its :class:`Origin`: the file and line it came
from (the parent's for an inherited value, the child's for one it gives), or the ``--set``
option that set it, so that validation can point at the right place.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.core.yaml_lines import KeyPath, load_yaml_text, load_yaml_with_lines

#: Top-level keys of a chip document that ``--set`` may name (the schema's, docs/simulator.md).
TOP_KEYS = (
    "version",
    "name",
    "description",
    "clock_hz",
    "source",
    "memories",
    "interconnect",
    "compute",
    "placement",
    "training",
)
#: Mappings whose keys are names the user chose (a missing one is a typo, never created).
NAMED_MAPPINGS: tuple[KeyPath, ...] = (("memories",),)


@dataclass(frozen=True)
class Origin:
    """Where a value of a chip document came from: ``source`` is a file path (with the 1-based
    ``line`` of its key) or an override, ``--set key.path`` (no line)."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


#: Key path → where its value came from.
Origins = dict[KeyPath, Origin]


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<document>"


def _drop_under(origins: Origins, path: KeyPath) -> None:
    """Forget the origins of ``path`` and everything below it."""
    n = len(path)
    for key in [k for k in origins if k[:n] == path]:
        del origins[key]


def merge(
    base: dict[Any, Any],
    base_origins: Origins,
    over: dict[Any, Any],
    over_origins: Origins,
    path: KeyPath = (),
    problems: list[str] | None = None,
) -> tuple[dict[Any, Any], Origins]:
    """``over`` merged onto ``base`` (the module docstring's rule), with the merged origins.

    Neither input is changed. A ``null`` in ``over`` for a key ``base`` lacks is reported in
    ``problems`` (one ``FILE:LINE: key: message`` each) when given, else raised.
    """
    result = copy.deepcopy(base)
    origins = {k: v for k, v in base_origins.items()}
    found: list[str] = [] if problems is None else problems
    _merge_into(result, origins, over, over_origins, path, found)
    if problems is None and found:
        raise InputError("\n".join(found))
    return result, origins


def _merge_into(
    target: dict[Any, Any],
    origins: Origins,
    over: dict[Any, Any],
    over_origins: Origins,
    path: KeyPath,
    problems: list[str],
) -> None:
    for key, value in over.items():
        child = (*path, key)
        here = over_origins.get(child)
        if value is None:
            if key not in target:
                have = ", ".join(str(k) for k in target) or "nothing"
                problems.append(
                    f"{here or '<chip>'}: {_dotted(child)}: null deletes an inherited key, but "
                    f"there is none to delete ({_dotted(path)} has: {have})"
                )
                continue
            del target[key]
            _drop_under(origins, child)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            if here is not None:
                origins[child] = here
            _merge_into(target[key], origins, value, over_origins, child, problems)
        else:
            target[key] = copy.deepcopy(value)
            _drop_under(origins, child)
            n = len(child)
            origins.update({k: v for k, v in over_origins.items() if k[:n] == child})


# --------------------------------------------------------------------------- extends


def _extends_target(value: Any, file: Path, where: str) -> Path:
    """The file an ``extends:`` value names: a path ending in ``.yaml``/``.yml`` or holding a
    ``/`` is relative to ``file``'s directory; anything else is a shipped chip's name."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{where}: extends: must name a shipped chip ({', '.join(shipped_chip_names())}) "
            f"or a chip file relative to this one (ending in .yaml), got {value!r}"
        )
    text = value.strip()
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        target = (file.parent / text).resolve()
        if not target.is_file():
            raise InputError(f"{where}: extends: chip file {text} not found (looked for {target})")
        return target
    shipped = CHIPS_DIR / f"{text}.yaml"
    if not shipped.is_file():
        raise InputError(
            f"{where}: extends: no shipped chip is called {text!r} (shipped: "
            f"{', '.join(shipped_chip_names())}); a file is named by a path ending in .yaml, "
            "relative to this file"
        )
    return shipped.resolve()


@dataclass(frozen=True)
class ResolvedDocument:
    """A chip file with its ``extends:`` chain merged (:func:`resolve_extends`)."""

    #: the merged document, without ``extends``
    document: Any
    #: key path → where its value came from
    origins: Origins
    #: problems validation reports with its own (``FILE:LINE: key: message`` each)
    problems: list[str]
    #: the file's own ``extends:`` value and where it stands (``None`` when it extends nothing)
    extends: str | None = None
    extends_at: Origin | None = None


def resolve_extends(path: str | Path) -> ResolvedDocument:
    """Read the chip file ``path`` and, through its ``extends:`` chain, every file it builds on.

    Returns the merged document, the origin of every key path and the problems found on the way
    that validation should report with its own (a ``null`` that deletes nothing). A missing
    file, a bad ``extends:`` value and a cycle raise :class:`InputError` at once.
    """
    return _resolve(Path(path), ())


def _resolve(path: Path, chain: tuple[Path, ...]) -> ResolvedDocument:
    data, lines = load_yaml_with_lines(path)
    shown = str(path)
    origins: Origins = {k: Origin(shown, line) for k, line in lines.items()}
    if not isinstance(data, dict) or "extends" not in data:
        return ResolvedDocument(data, origins, [])
    at = Origin(shown, lines.get(("extends",), 1))
    target = _extends_target(data["extends"], path, str(at))
    key = path.resolve()
    if target in (*chain, key):
        files = [*chain, key, target]
        start = files.index(target)
        raise InputError(
            f"{at}: extends: cycle: {' → '.join(str(f) for f in files[start:])} (a chip "
            "cannot build on itself)"
        )
    parent = _resolve(target, (*chain, key))
    if not isinstance(parent.document, dict):
        raise InputError(f"{at}: extends: {target} is no chip (its document is no mapping)")
    own = {k: v for k, v in data.items() if k != "extends"}
    _drop_under(origins, ("extends",))
    problems = list(parent.problems)
    merged, merged_origins = merge(parent.document, parent.origins, own, origins, (), problems)
    merged_origins[()] = origins.get((), Origin(shown, 1))
    return ResolvedDocument(merged, merged_origins, problems, str(data["extends"]), at)


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """``"memories.sram.read_energy_pj=2"`` → ``(("memories", "sram", "read_energy_pj"), 2)``.

    The value is read as YAML (a number, a word, ``[a, b]``, ``{k: v}``; nothing or ``null``
    is ``None``, which deletes the key). A malformed override is an :class:`InputError`.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = tuple(p.strip() for p in key.split("."))
    if not sep or not key or any(not p for p in parts):
        raise InputError(
            f"--set {text!r}: expected KEY.PATH=VALUE, e.g. "
            "memories.weight_sram.read_energy_pj=2 or placement.weights=dram"
        )
    value = load_yaml_text(raw, f"--set {key}") if raw.strip() else None
    return parts, value


def apply_overrides(
    document: Any, origins: Origins, overrides: Sequence[str]
) -> tuple[Any, Origins]:
    """``document`` with each ``key.path=value`` of ``overrides`` applied, in order.

    Every key of the path but the last must name a mapping of the document; a missing one is
    created, except under ``memories`` (its keys are the chip's level names, so a missing one is
    a typo: the error lists the levels there are). The last key may be new (validation then
    checks it is a key the schema knows). The top-level key must be one of :data:`TOP_KEYS`.
    Each set value's origin is ``--set key.path``. Problems are :class:`InputError`.
    """
    if not overrides:
        return document, origins
    if not isinstance(document, dict):
        raise InputError("--set: the chip document is no mapping; nothing can be set in it")
    result = copy.deepcopy(document)
    out = dict(origins)
    for text in overrides:
        path, value = parse_override(text)
        option = f"--set {_dotted(path)}"
        if path[0] not in TOP_KEYS:
            raise InputError(
                f"{option}: unknown chip key {path[0]!r} (expected one of {', '.join(TOP_KEYS)})"
            )
        node = result
        for depth, part in enumerate(path[:-1]):
            here = path[: depth + 1]
            key = _existing_key(node, part)
            if key not in node:
                if path[:depth] in NAMED_MAPPINGS:
                    raise InputError(
                        f"{option}: {_dotted(path[:depth])} has no {part!r} (it has: "
                        f"{', '.join(str(k) for k in node) or 'nothing'})"
                    )
                if value is None:
                    raise InputError(
                        f"{option}: the chip has no {_dotted(here)}; nothing to delete"
                    )
                node[key] = {}
                out[here] = Origin(option)
            elif not isinstance(node[key], dict):
                raise InputError(
                    f"{option}: {_dotted(here)} is {_kind(node[key])}, not a mapping: it has no "
                    "keys to set"
                )
            node = node[key]
        last = _existing_key(node, path[-1])
        full = (*path[:-1], last)
        if value is None:
            if last not in node:
                raise InputError(f"{option}: the chip has no {_dotted(path)}; nothing to delete")
            del node[last]
            _drop_under(out, full)
            continue
        node[last] = value
        _drop_under(out, full)
        out[full] = Origin(option)
    return result, out


def _existing_key(mapping: dict[Any, Any], part: str) -> Any:
    """``part`` as the key ``mapping`` has: the integer key ``8`` for ``"8"``
    (``compute.mac_energy_pj.8``), else ``part`` itself."""
    if part not in mapping and part.lstrip("-").isdigit() and int(part) in mapping:
        return int(part)
    return part


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else type(value).__name__
