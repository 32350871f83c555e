"""Learning-rule spec strings, shared by the learning side, the simulator, the CLI and reports.

A spec is a rule kind, optionally followed by ``:`` and the rule's parameters:

========  ==============================================================================
``bp``    backpropagation: errors go back through the forward weights ``W`` (transposed)
``fa``    feedback alignment: through a fixed random ``B`` of ``W``'s shape
``ifa``   initial feedback alignment: ``B = W₀``, fixed; ``ifa:<degrees>`` places ``B`` at
          that angle θ (0 ≤ θ ≤ 180) from ``W₀`` (soft IFA)
``dfa``   direct feedback alignment: every layer gets the *output* error through its own
          fixed random matrix ``D_l`` (n_out × n_l), not through the layer above
``usf``   uniform sign-concordant feedback: ``B = sign(W) · rms(W)``, from the current ``W``
``brsf``  batchwise-random-magnitude sign-concordant feedback: ``B = |R| ∘ sign(W)``, ``R``
          redrawn every batch
``frsf``  fixed-random-magnitude sign-concordant feedback: ``B = |R| ∘ sign(W)``, ``R`` fixed
``kp``    Kolen–Pollack: ``B`` starts random and receives ``W``'s every update, and both decay
          by ``decay`` per unit of learning rate (``kp:decay=<λ>``, default 0), so ``W − B``
          shrinks by ``1 − η·λ`` each step without ``B`` ever reading ``W``
========  ==============================================================================

docs/learning.md defines each precisely. This module is torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.core.errors import InputError

RULE_KINDS = ("bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp")

#: One line per rule kind, for ``--help`` texts and reports.
RULE_DESCRIPTIONS = {
    "bp": "backpropagation (errors through W, transported)",
    "fa": "feedback alignment (fixed random B)",
    "ifa": "initial feedback alignment (B = W0, or at an angle: ifa:<deg>)",
    "dfa": "direct feedback alignment (output error through a fixed random D per layer)",
    "usf": "uniform sign-concordant feedback (B = sign(W) * rms(W))",
    "brsf": "batchwise-random-magnitude sign-concordant feedback (|R| * sign(W), R per batch)",
    "frsf": "fixed-random-magnitude sign-concordant feedback (|R| * sign(W), R fixed)",
    "kp": "Kolen-Pollack (B gets W's updates; kp:decay=<lambda> decays both)",
}

#: What ``--algo`` accepts, for help texts and error messages.
RULE_SYNTAX = "bp, fa, ifa, ifa:<deg>, dfa, usf, brsf, frsf, kp, kp:decay=<lambda>"

#: Kinds whose backward pass uses the sign of the current ``W`` (a 1-bit weight transport).
SIGN_KINDS = ("usf", "brsf", "frsf")


@dataclass(frozen=True)
class Rule:
    """A parsed learning rule.

    ``kind`` is one of :data:`RULE_KINDS`; ``angle_deg`` is the initial angle between the
    forward and feedback weights for ``ifa`` (0 for plain IFA) and ``None`` otherwise;
    ``decay`` is Kolen–Pollack's weight decay λ for ``kp`` and ``None`` otherwise.
    """

    kind: str
    angle_deg: float | None = None
    decay: float | None = None

    @property
    def spec(self) -> str:
        """Canonical spec string: ``ifa:45`` (``ifa:0`` is ``ifa``), ``kp:decay=0.5`` (``kp``
        when λ = 0), otherwise the kind."""
        if self.kind == "ifa" and self.angle_deg:
            return f"ifa:{self.angle_deg:g}"
        if self.kind == "kp" and self.decay:
            return f"kp:decay={self.decay:g}"
        return self.kind

    @property
    def uses_feedback_weights(self) -> bool:
        """Every rule but BP sends errors through something other than the transposed ``W``."""
        return self.kind != "bp"

    @property
    def direct(self) -> bool:
        """DFA: each layer's error comes from the output error, not from the layer above."""
        return self.kind == "dfa"

    @property
    def reads_weight_sign(self) -> bool:
        """The sign-concordant rules build ``B`` from the sign of the current ``W``."""
        return self.kind in SIGN_KINDS

    @property
    def stores_feedback(self) -> bool:
        """The rule keeps a feedback tensor: ``B`` (FA, IFA, KP), DFA's ``D``, or the random
        magnitudes ``|R|`` of brSF/frSF. uSF keeps none (``B`` is the sign of ``W``)."""
        return self.uses_feedback_weights and self.kind != "usf"

    @property
    def updates_feedback(self) -> bool:
        """Kolen–Pollack writes ``B`` every step."""
        return self.kind == "kp"

    @property
    def redraws_feedback(self) -> bool:
        """brSF draws new magnitudes every batch."""
        return self.kind == "brsf"

    @property
    def description(self) -> str:
        """One line saying what the rule is."""
        return RULE_DESCRIPTIONS[self.kind]

    def __str__(self) -> str:
        return self.spec


def _number(spec: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"bad {name} in rule {spec!r}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"bad {name} in rule {spec!r}: expected a finite number, got {text!r}")
    return value


def parse_rule(spec: str) -> Rule:
    """Parse one rule spec; raise :class:`InputError` naming the spec when it is invalid."""
    text = str(spec).strip().lower()
    kind, sep, params = text.partition(":")
    kind = kind.strip()
    if kind not in RULE_KINDS:
        raise InputError(f"unknown learning rule {spec!r}: expected one of {RULE_SYNTAX}")
    if kind == "ifa":
        if not sep:
            return Rule("ifa", 0.0)
        angle_text = params.strip()
        if angle_text.startswith("angle="):
            angle_text = angle_text[len("angle=") :]
        try:
            angle = float(angle_text)
        except ValueError:
            raise InputError(
                f"bad angle in rule {spec!r}: expected ifa:<degrees> with a number, e.g. ifa:45"
            ) from None
        if not math.isfinite(angle) or not 0.0 <= angle <= 180.0:
            raise InputError(f"angle in rule {spec!r} is outside [0, 180] degrees")
        return Rule("ifa", angle)
    if kind == "kp":
        decay = 0.0
        for item in params.split(":") if sep else []:
            key, eq, value = (s.strip() for s in item.partition("="))
            if key != "decay" or not eq:
                raise InputError(
                    f"bad parameter {item.strip()!r} in rule {spec!r}: kp takes decay=<lambda>, "
                    "e.g. kp:decay=0.5"
                )
            decay = _number(spec, "decay", value)
            if decay < 0:
                raise InputError(f"decay in rule {spec!r} must be >= 0, got {value}")
        return Rule("kp", decay=decay)
    if sep:
        raise InputError(
            f"rule {kind!r} takes no parameters, got {spec!r} (parameters: ifa:<deg>, "
            "kp:decay=<lambda>)"
        )
    return Rule(kind)


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
    """File-system name of a rule spec: ``ifa:30`` → ``ifa-30``, ``kp:decay=1`` → ``kp-decay=1``."""
    return spec.replace(":", "-")
