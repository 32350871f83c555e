"""The one figure style of hwsim: every PNG (compare report, sweeps, analyses) is drawn with it.

Fixed settings so that figures don't depend on a user's matplotlibrc, the Agg backend (headless,
deterministic), and PNG bytes without timestamps: the same figure gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless and deterministic; must precede the pyplot import
import matplotlib.pyplot as plt

FIGURE_DPI = 110
#: Fixed style so the figures don't depend on a user's matplotlibrc.
FIGURE_STYLE: dict[Any, Any] = {
    "figure.dpi": FIGURE_DPI,
    "savefig.dpi": FIGURE_DPI,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "hwsim",
    "path.simplify": True,
}


def png_bytes(fig: Any) -> bytes:
    """Render and close ``fig``: PNG bytes without timestamps (same figure, same bytes)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def draw_png(draw: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """``draw(*args, **kwargs)`` (which returns a matplotlib figure) in :data:`FIGURE_STYLE`,
    rendered to PNG bytes."""
    with matplotlib.rc_context(FIGURE_STYLE):
        return png_bytes(draw(*args, **kwargs))


def rule_colors(rules: Sequence[str]) -> dict[str, Any]:
    """One colour per rule, in the order given (the same rule order gives the same colours)."""
    palette = plt.get_cmap("tab10")
    return {rule: palette(i % 10) for i, rule in enumerate(rules)}
