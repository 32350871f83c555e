"""Load YAML while remembering the line of every key, so validation can point at it.

This is the one reader of the YAML files users edit (chips, experiments, a run's
``config.yaml``). It accepts the plain YAML core schema only and refuses, as an
:class:`~hwsim.core.errors.InputError` naming the file and line, everything a hostile or
mangled file could use to hang, crash or run code:

* aliases (``*name``): no alias expansion at all, so no "billion laughs";
* nesting deeper than :data:`MAX_NESTING` levels;
* explicit tags outside the core schema (``!!python/object/apply:…``, ``!foo``, ``!!binary``);
* bytes that are not UTF-8 (a UTF-16/UTF-32 file is named as such), NUL and control characters;
* values the core constructors reject (``!!int abc``, a date ``2024-13-45``, a 5,000-digit int).
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from hwsim.core.errors import InputError

#: A key path from the document root: ``("memories", "sram", "size_bytes")``.
KeyPath = tuple[Any, ...]

#: Deepest nesting of mappings and lists accepted (the shipped files use 5).
MAX_NESTING = 100
_CORE = "tag:yaml.org,2002:"
#: Explicit tags accepted: the YAML core schema (``!!str``, ``!!int``… ``!!map``).
CORE_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases, non-core tags and deep nesting."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.hwsim_file = file
        self.hwsim_depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise InputError(
                f"{self.hwsim_file}:{line}: alias *{event.anchor} is not allowed in hwsim files; "
                "write the value out"
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in CORE_TAGS:
            raise InputError(
                f"{self.hwsim_file}:{line}: tag {_shown_tag(tag)} is not allowed; hwsim files use "
                "plain YAML (strings, numbers, true/false, null, lists, mappings)"
            )
        self.hwsim_depth += 1
        try:
            if self.hwsim_depth > MAX_NESTING:
                raise InputError(
                    f"{self.hwsim_file}:{line}: nested deeper than {MAX_NESTING} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self.hwsim_depth -= 1


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def decode_yaml_bytes(raw: bytes, file: str | Path) -> str:
    """``raw`` as UTF-8 text; other encodings are an :class:`InputError` with file and line."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise InputError(
                f"{file}:1: the file is {name} (it starts with a {name} byte-order "
                "mark); save it as UTF-8"
            )
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            f"{file}:{line}: NUL byte in the file (UTF-16 or UTF-32 without a byte-order "
            "mark?); save it as UTF-8"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{file}:{line}: byte 0x{raw[exc.start]:02x} is not UTF-8 (Latin-1 or another "
            "encoding?); save the file as UTF-8"
        ) from None


def load_yaml_with_lines(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """Read a YAML file; return its data and a map from key path to 1-based line number.

    Duplicate keys, syntax errors, a missing file and everything listed in the module docstring
    raise :class:`InputError` naming the file and line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return parse_yaml_with_lines(decode_yaml_bytes(raw, path), path)


def load_yaml_text(text: str, file: str | Path) -> Any:
    """The data of YAML ``text`` (read from ``file``), checked as :func:`load_yaml_with_lines`."""
    return parse_yaml_with_lines(text, file)[0]


def parse_yaml_with_lines(text: str, file: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """:func:`load_yaml_with_lines` for text already read from ``file``."""
    try:
        loader = _Loader(text, str(file))
    except yaml.YAMLError as exc:  # a control character (the reader checks the whole text)
        raise InputError(_yaml_problem(exc, text, file)) from None
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        data = _convert(loader, node, (), lines, file) if node is not None else None
    except yaml.YAMLError as exc:
        raise InputError(_yaml_problem(exc, text, file)) from None
    finally:
        loader.dispose()
    return data, lines


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str | Path) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        char = (
            exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
        )
        return f"{file}:{line}: control character 0x{char:02x} is not allowed in YAML"
    mark = getattr(exc, "problem_mark", None)
    where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: invalid YAML: {problem}"


def _construct(loader: yaml.SafeLoader, node: yaml.Node, file: str | Path) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, TypeError) as exc:  # !!int abc, 2024-13-45, 10**5000
        value = node.value if isinstance(node, yaml.ScalarNode) else "…"
        shown = value if len(value) <= 40 else f"{value[:37]}..."
        raise InputError(
            f"{file}:{node.start_mark.line + 1}: cannot read {shown!r} as "
            f"{node.tag.removeprefix(_CORE)} ({str(exc)[:80]})"
        ) from None


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    file: str | Path,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        if node.tag != _CORE + "map":
            raise InputError(f"{file}:{lines[path]}: tag {_shown_tag(node.tag)} on a mapping")
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(f"{file}:{key_line}: keys must be scalars")
            if key_node.tag == _CORE + "merge":
                raise InputError(f"{file}:{key_line}: merge keys (<<) are not allowed")
            key = _construct(loader, key_node, file)
            if key in result:
                dotted = ".".join(str(p) for p in (*path, key))
                raise InputError(f"{file}:{key_line}: {dotted}: key is given twice")
            child = (*path, key)
            result[key] = _convert(loader, value_node, child, lines, file)
            lines[child] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _CORE + "seq":
            raise InputError(f"{file}:{lines[path]}: tag {_shown_tag(node.tag)} on a list")
        return [
            _convert(loader, item, (*path, i), lines, file) for i, item in enumerate(node.value)
        ]
    if node.tag in (_CORE + "map", _CORE + "seq"):
        raise InputError(f"{file}:{lines[path]}: tag {_shown_tag(node.tag)} on a scalar")
    return _construct(loader, node, file)
