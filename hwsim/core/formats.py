"""Number formats of MAC operands and the one promotion rule (docs/simulator.md, "Number formats").

A format is a name: ``int<N>`` (integers of N bits, any N ≥ 1; the usual ones are ``int4``,
``int8``, ``int16``, ``int32``) or one of the floats ``fp8``, ``fp16``, ``bf16``, ``fp32``.
Torch-free, used by the workload contract and the simulator.

Promotion (:func:`promote`), the format a MAC runs in given its operands' formats:

* all operands int: the int of the widest operand width (``int4 × int8 → int8``);
* any float operand: a float. Start from the widest float operand (``fp16`` and ``bf16`` both
  count as 16 bits; when both are among the widest, neither holds the other, so the result is
  ``fp32``). If an int operand is wider than that float, widen to the narrowest float at least
  as wide as the int (ties at 16 bits go to ``fp16``), or to ``fp32`` when no float is that
  wide (``int8 × fp32 → fp32``, ``int16 × fp8 → fp16``, ``int32 × bf16 → fp32``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.core.errors import InputError

#: The float formats, narrowest first; at equal width the first one is preferred on widening.
FLOAT_FORMATS = ("fp8", "fp16", "bf16", "fp32")
#: The integer formats hwsim names in its chips and docs (any ``int<N>``, N ≥ 1, parses).
INT_FORMATS = ("int4", "int8", "int16", "int32")
#: Every named format; this order breaks ties between formats of equal width (a chip's table is
#: kept narrowest first, ties in this order).
FORMATS = (*INT_FORMATS, *FLOAT_FORMATS)
_FLOAT_BITS = {"fp8": 8, "fp16": 16, "bf16": 16, "fp32": 32}


@dataclass(frozen=True)
class NumberFormat:
    """A parsed format: its ``family`` (``int`` or ``float``), width in bits and name."""

    family: str
    bits: int
    name: str

    def __str__(self) -> str:
        return self.name


def parse_format(text: object, where: str = "format") -> NumberFormat:
    """The format named ``text`` (``int8``, ``fp32``…, case-insensitive).

    Raises :class:`InputError` naming ``where`` and the formats expected.
    """
    if isinstance(text, str):
        name = text.strip().lower()
        if name in _FLOAT_BITS:
            return NumberFormat("float", _FLOAT_BITS[name], name)
        digits = name.removeprefix("int")
        plain = digits.isascii() and digits.isdigit() and not digits.startswith("0")
        if name.startswith("int") and plain:
            return NumberFormat("int", int(digits), f"int{int(digits)}")
    raise InputError(
        f"{where}: unknown number format {text!r} (expected int<N> with N ≥ 1, e.g. "
        f"{', '.join(INT_FORMATS)}, or one of {', '.join(FLOAT_FORMATS)})"
    )


def int_format(bits: int) -> str:
    """The integer format of ``bits`` bits (``8`` → ``int8``)."""
    return parse_format(f"int{bits}").name


def promote(*names: str) -> str:
    """The format a MAC with operands in formats ``names`` runs in (module docstring rule)."""
    if not names:
        raise ValueError("promote() needs at least one operand format")
    formats = [parse_format(n) for n in names]
    floats = [f for f in formats if f.family == "float"]
    int_width = max((f.bits for f in formats if f.family == "int"), default=0)
    if not floats:
        return f"int{int_width}"
    widest = max(f.bits for f in floats)
    kinds = {f.name for f in floats if f.bits == widest}
    result = "fp32" if kinds == {"fp16", "bf16"} else kinds.pop()
    if int_width > _FLOAT_BITS[result]:
        wide_enough = [f for f in FLOAT_FORMATS if _FLOAT_BITS[f] >= int_width]
        result = wide_enough[0] if wide_enough else "fp32"
    return result


def holds(unit: str, needed: str) -> bool:
    """Whether a MAC unit of format ``unit`` can run a MAC of format ``needed`` exactly.

    Same family only: an int unit runs any int at most as wide; a float unit runs its own
    format and every strictly narrower float (``fp32`` runs ``fp16`` and ``bf16``; ``fp16`` and
    ``bf16`` run ``fp8`` but not each other).
    """
    u, n = parse_format(unit), parse_format(needed)
    if u.family != n.family:
        return False
    if u.family == "int":
        return u.bits >= n.bits
    return u.name == n.name or u.bits > n.bits


def unit_for(needed: str, supported: list[str] | tuple[str, ...]) -> str | None:
    """The supported format that runs a MAC of format ``needed``: the format itself, else the
    narrowest one of the same family that :func:`holds` it (ties in :data:`FORMATS` order);
    ``None`` when there is none."""
    if needed in supported:
        return needed
    able = [s for s in supported if holds(s, needed)]
    if not able:
        return None

    def rank(name: str) -> tuple[int, int]:
        order = FORMATS.index(name) if name in FORMATS else len(FORMATS)
        return (parse_format(name).bits, order)

    return min(able, key=rank)
