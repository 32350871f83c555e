"""What one fetch moves at one memory level (:class:`Move`), and its words and accesses.

The one value type the closed-form counts, the SimPy lowering, the mapper's costs and the MAC
array's operand traffic (:mod:`hwsim.sim.spatial`) all build on.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.sim.chip import Chip

#: the directions of operand moves: the innermost level feeds the MAC array (priced as a
#: read), the array drains partial sums and ΔW back into it (priced as a write)
FEED, DRAIN = "feed", "drain"


@dataclass(frozen=True)
class Move:
    """Bits of one tensor moved at one level by one fetch (``level`` None: generated)."""

    level: str | None
    tensor: str
    #: the (tensor, layer) whose storage this is (None: data passing through, not stored)
    owner: tuple[str, int] | None
    direction: str
    bits: int
    link_bits: int = 0
    generated_values: int = 0
    #: a compute-in-memory level's count of this move (array activations, conversions, rows
    #: read out or cells programmed) and the cycles it keeps the level busy, or a digital
    #: level's scattered write (a mirror sent only its changed values: one access per value);
    #: None on every other digital move, whose accesses and time follow from ``bits``
    #: (:func:`move_accesses`)
    accesses: int | None = None
    cycles: int | None = None
    #: an operand the innermost level feeds the MAC array (or takes from it), streamed while
    #: the array computes: counted and priced, no time of its own (``hwsim.sim.spatial``)
    operand: bool = False


def move_accesses(chip: Chip, move: Move) -> tuple[int, int]:
    """(words, accesses) of one move: a digital level's ⌈bits / word⌉ words in bursts, or a
    move's own count (one word per activation, conversion, row or cell; one per value of a
    scattered write)."""
    if move.accesses is not None:
        return move.accesses, move.accesses
    if move.level is None:
        return 0, 0
    return chip.memory(move.level).words_and_accesses(move.bits)
