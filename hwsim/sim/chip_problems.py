"""Validation helpers of the chip schema: one message per problem, each as
``FILE:LINE: key.path: what is wrong`` (:class:`Problems`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

from hwsim.core.yaml_lines import KeyPath
from hwsim.sim.chip_document import Origin, Origins


class Problems:
    """Collects one message per problem, each naming file, line and key path.

    ``origins`` (key path → :class:`Origin`) says where each value came from when the document
    was merged from several files or overridden (``--set``); without it every key is in
    ``file``, at its line in ``lines``. A problem names the nearest key path that has a place.
    """

    def __init__(self, file: Path, lines: dict[KeyPath, int], origins: Origins | None = None):
        self.file = file
        self.origins: Origins = (
            origins
            if origins is not None
            else {k: Origin(str(file), line) for k, line in lines.items()}
        )
        self.messages: list[str] = []

    def where(self, path: KeyPath) -> Origin:
        """Where the value at ``path`` came from (its nearest key path that has a place)."""
        probe = path
        while probe not in self.origins and probe:
            probe = probe[:-1]
        return self.origins.get(probe, Origin(str(self.file), 1))

    def add(self, path: KeyPath, message: str) -> None:
        dotted = ".".join(str(p) for p in path) or "<document>"
        self.messages.append(f"{self.where(path)}: {dotted}: {message}")

    def mapping(
        self, value: Any, path: KeyPath, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> dict[str, Any]:
        """Check a mapping's keys; return it (or an empty dict when it isn't one)."""
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping, got {kind_of(value)}")
            return {}
        allowed = set(required) | set(optional) | {"source"}
        for key in value:
            if key not in allowed:
                self.add((*path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                self.add((*path, key), "missing required key")
        source = value.get("source")
        if source is not None and not isinstance(source, str):
            self.add((*path, "source"), f"must be a string, got {kind_of(source)}")
        return value

    def integer(self, value: Any, path: KeyPath, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {kind_of(value)} {value!r}")
            return minimum
        if value < minimum:
            word = "positive" if minimum == 1 else f"at least {minimum}"
            self.add(path, f"must be {word}, got {value}")
            return minimum
        return value

    def number(self, value: Any, path: KeyPath, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"must be a number, got {kind_of(value)} {value!r}")
            return 1.0
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.add(path, f"must be {'positive' if positive else 'zero or more'}, got {value}")
            return 1.0
        return float(value)

    def choice(self, value: Any, path: KeyPath, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.add(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return choices[0]
        return cast(str, value)


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
