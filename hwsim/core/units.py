"""Numbers with units, formatted one way everywhere: tables, reports, CLI output."""

from __future__ import annotations

import math
from collections.abc import Iterable

_SI = (
    (1e9, "G"),
    (1e6, "M"),
    (1e3, "k"),
    (1.0, ""),
    (1e-3, "m"),
    (1e-6, "µ"),
    (1e-9, "n"),
    (1e-12, "p"),
)
#: Shown for a value that is missing (not measured, not applicable).
MISSING = "—"
#: Bit width meaning "not quantized" (float32): weights, activations, feedback, errors.
FLOAT_BITS = 32


def si_prefix(value: float) -> tuple[float, str]:
    """The scale and SI prefix that put ``|value|`` in [1, 1000) (1 and "" for 0)."""
    magnitude = abs(value)
    if magnitude == 0 or not math.isfinite(magnitude):
        return 1.0, ""
    for scale, prefix in _SI:
        if magnitude >= scale * (1 - 5e-5):  # 999.99 µ rounds to 1.000 m, not 1,000 µ
            return scale, prefix
    return _SI[-1]


def column_scale(values: Iterable[float]) -> tuple[float, str]:
    """One SI scale for a whole table column, chosen from its largest value."""
    return si_prefix(max((abs(v) for v in values), default=0.0))


def format_sig(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits in fixed notation (at most 6 decimals)."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.{digits - 1}e}")  # 0.99999 → 1.000, so count digits after rounding
    decimals = max(0, min(6, digits - 1 - math.floor(math.log10(abs(rounded)))))
    return f"{rounded:,.{decimals}f}"


def format_si(value: float, unit: str, digits: int = 3) -> str:
    """``value`` in ``unit`` with an SI prefix, e.g. ``format_si(7680, "bit")`` → ``7.68 kbit``."""
    rounded = float(f"{value:.{digits - 1}e}") if math.isfinite(value) else value
    scale, prefix = si_prefix(rounded)
    return f"{format_sig(rounded / scale, digits)} {prefix}{unit}"


def format_number(value: float | None, spec: str = ".3f") -> str:
    """``value`` in the format ``spec`` (``.3f``, ``.4g``, ...), or :data:`MISSING` for None."""
    return MISSING if value is None else format(value, spec)


def format_mean_std(mean: float | None, std: float | None, spec: str = ".3f") -> str:
    """``mean ± std`` in ``spec``; just the mean without a spread (one seed), ``—`` without both."""
    if mean is None:
        return MISSING
    return format(mean, spec) + ("" if std is None else f" ± {format(std, spec)}")
