"""Learning-rule spec strings, shared by the learning side, the simulator, the CLI and reports.

A spec is one of ``bp``, ``fa``, ``ifa`` (initial alignment, θ = 0) or ``ifa:<degrees>``
(soft initial alignment at angle θ, 0 ≤ θ ≤ 180). This module is torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.core.errors import InputError

RULE_KINDS = ("bp", "fa", "ifa")


@dataclass(frozen=True)
class Rule:
    """A parsed learning rule.

    ``kind`` is ``"bp"``, ``"fa"`` or ``"ifa"``; ``angle_deg`` is the initial angle between the
    forward and feedback weights for ``ifa`` (0 for plain IFA) and ``None`` otherwise.
    """

    kind: str
    angle_deg: float | None = None

    @property
    def spec(self) -> str:
        """Canonical spec string: ``bp``, ``fa``, ``ifa`` or ``ifa:45`` (``ifa:0`` is ``ifa``)."""
        if self.kind != "ifa" or not self.angle_deg:
            return self.kind
        return f"ifa:{self.angle_deg:g}"

    @property
    def uses_feedback_weights(self) -> bool:
        """FA and IFA send errors through a fixed matrix ``B``; BP reads ``W`` itself."""
        return self.kind != "bp"

    def __str__(self) -> str:
        return self.spec


def parse_rule(spec: str) -> Rule:
    """Parse one rule spec; raise :class:`InputError` naming the spec when it is invalid."""
    text = str(spec).strip().lower()
    kind, sep, angle_text = text.partition(":")
    if kind not in RULE_KINDS or (sep and kind != "ifa"):
        raise InputError(
            f"unknown learning rule {spec!r}: expected one of bp, fa, ifa, ifa:<degrees> "
            "(e.g. ifa:45)"
        )
    if kind != "ifa":
        return Rule(kind)
    if not sep:
        return Rule("ifa", 0.0)
    try:
        angle = float(angle_text)
    except ValueError:
        raise InputError(
            f"bad angle in rule {spec!r}: expected ifa:<degrees> with a number, e.g. ifa:45"
        ) from None
    if not math.isfinite(angle) or not 0.0 <= angle <= 180.0:
        raise InputError(f"angle in rule {spec!r} is outside [0, 180] degrees")
    return Rule("ifa", angle)


def parse_rules(specs: str | list[str]) -> list[Rule]:
    """Parse a comma-separated list (or a list) of rule specs; duplicates are an error."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    rules = [parse_rule(s) for s in items if str(s).strip()]
    if not rules:
        raise InputError("no learning rule given: expected e.g. --algo bp,fa,ifa")
    seen: set[str] = set()
    for rule in rules:
        if rule.spec in seen:
            raise InputError(f"learning rule {rule.spec!r} is given twice")
        seen.add(rule.spec)
    return rules


def rule_dirname(spec: str) -> str:
    """File-system name of a rule spec (``ifa:30`` → ``ifa-30``)."""
    return spec.replace(":", "-")
