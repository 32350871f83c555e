"""The one statistics convention of hwsim: mean and *sample* standard deviation over seeds.

Every "mean ± std" that hwsim prints or saves (compare's ``final_std``, sweep aggregates,
reproduction verdicts, report bands) comes from :func:`describe` or :func:`mean_std`:

- the standard deviation is the sample standard deviation (``n − 1`` in the denominator), the
  unbiased estimate of the spread over seeds one would get from other seeds;
- with one value there is no spread: ``std`` is ``None`` (never 0, which would claim a
  measured spread of zero); with no value the mean is ``None`` too;
- only finite numbers count: NaN, ±inf and ``None`` are left out before anything is computed,
  and ``n`` says how many values were kept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any


def finite(value: Any) -> bool:
    """True for a finite int or float (not a bool, not None, not NaN or ±inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the finite ``values`` (see the module docstring)."""
    kept = [float(v) for v in values if finite(v)]
    if not kept:
        return None, None
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else None


def describe(values: Iterable[Any]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` of the finite ``values``, in their order."""
    kept = [v for v in values if finite(v)]
    mean, std = mean_std(kept)
    return {"mean": mean, "std": std, "n": len(kept), "values": kept}
