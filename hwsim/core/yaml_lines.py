"""Load YAML while remembering the line of every key, so validation can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hwsim.core.errors import InputError

#: A key path from the document root: ``("memories", "sram", "size_bytes")``.
KeyPath = tuple[Any, ...]


def load_yaml_with_lines(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """Read a YAML file; return its data and a map from key path to 1-based line number.

    Duplicate keys, syntax errors and a missing file raise :class:`InputError` naming the file
    and line. Only the safe YAML subset is accepted (no tags that build Python objects).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        data = _convert(loader, node, (), lines, path) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, lines


def _convert(
    loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise InputError(f"{file}:{key_node.start_mark.line + 1}: keys must be scalars")
            if key in result:
                dotted = ".".join(str(p) for p in (*path, key))
                raise InputError(
                    f"{file}:{key_node.start_mark.line + 1}: {dotted}: key is given twice"
                )
            child = (*path, key)
            result[key] = _convert(loader, value_node, child, lines, file)
            lines[child] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(loader, item, (*path, i), lines, file) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
