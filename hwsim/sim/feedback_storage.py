"""PRNG against stored feedback: the external memory accesses a chip saves by regenerating B.

Published DFA training processors regenerate their feedback weights from a seed instead of
fetching them (DF-LNPU, JSSC 2021, reports −42.8% of all external memory accesses). For a chip
whose ``training.feedback_storage`` is ``prng``, :func:`prng_against_stored` simulates every rule
that keeps a feedback tensor twice — as the chip is, and with that tensor stored in the chip's
outermost DRAM level instead — and compares the DRAM accesses of one training step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwsim.core.rules import Rule, parse_rules
from hwsim.core.workload import Workload
from hwsim.sim.api import RuleResult, resolve_workload, simulate, unsupported_reason
from hwsim.sim.chip import Chip


@dataclass(frozen=True)
class PrngSaving:
    """One rule's DRAM accesses per step with feedback regenerated against stored in DRAM."""

    rule: str
    #: the DRAM level the stored variant keeps the feedback in
    level: str
    stored_accesses: int
    prng_accesses: int
    #: DRAM accesses of the stored variant that read or write the feedback tensor itself
    stored_feedback_accesses: int

    @property
    def reduction(self) -> float:
        """``prng / stored − 1``: negative when regenerating saves accesses."""
        if not self.stored_accesses:
            return 0.0
        return self.prng_accesses / self.stored_accesses - 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (``summary.json``, ``--json``)."""
        return {
            "rule": self.rule,
            "level": self.level,
            "stored_accesses": self.stored_accesses,
            "prng_accesses": self.prng_accesses,
            "stored_feedback_accesses": self.stored_feedback_accesses,
            "reduction": self.reduction,
        }


def dram_levels(chip: Chip) -> list[str]:
    """Names of the chip's external (``kind: dram``) memory levels."""
    return [m.name for m in chip.memories if m.kind == "dram"]


def stored_variant(chip: Chip, level: str) -> Chip:
    """``chip`` with its feedback stored in ``level`` (a DRAM level) instead of regenerated."""
    placement = {**chip.placement, "feedback_weights": level}
    return dataclasses.replace(chip, feedback_storage="dram", placement=placement)


def _dram_accesses(result: RuleResult, levels: list[str], tensor: str | None = None) -> int:
    return sum(
        count.accesses
        for (level, name, _phase, _direction), count in result.step.counts.accesses.items()
        if level in levels and (tensor is None or name == tensor)
    )


def prng_against_stored(
    workload: Workload | str | Any,
    chip: Chip,
    rules: str | Sequence[str | Rule] = "fa,ifa,dfa",
    simulated: Mapping[str, RuleResult] | None = None,
) -> list[PrngSaving]:
    """For each of ``rules`` that keeps a feedback tensor, DRAM accesses per nominal step with
    the chip's PRNG against the same chip storing the feedback in its outermost DRAM level.

    Empty when the chip does not regenerate feedback (``feedback_storage`` other than ``prng``)
    or has no DRAM level; rules the chip cannot run (Kolen–Pollack's B changes every step, so
    a PRNG cannot regenerate it) are left out. ``simulated``: results the caller already has
    of ``workload`` on ``chip`` as it is, by rule spec; only the stored variant is simulated
    for those.
    """
    levels = dram_levels(chip)
    if chip.feedback_storage != "prng" or not levels:
        return []
    specs = [
        r.spec if isinstance(r, Rule) else r for r in ([rules] if isinstance(rules, str) else rules)
    ]
    kept = [
        r.spec
        for r in parse_rules(",".join(specs))
        if r.stores_feedback and unsupported_reason(chip, r) is None
    ]
    if not kept:
        return []
    work = resolve_workload(workload)
    as_is = dict(simulated or {})  # the caller's results of this workload on this chip, reused
    missing = [spec for spec in kept if spec not in as_is]
    if missing:
        as_is.update(simulate(work, chip, missing).rules)
    stored = simulate(work, stored_variant(chip, levels[-1]), kept)
    return [
        PrngSaving(
            rule=spec,
            level=levels[-1],
            stored_accesses=_dram_accesses(stored.rules[spec], levels),
            prng_accesses=_dram_accesses(as_is[spec], levels),
            stored_feedback_accesses=_dram_accesses(stored.rules[spec], levels, "feedback_weights"),
        )
        for spec in kept
    ]
