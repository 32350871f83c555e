"""Tiny jobs for the executor tests: module-level (workers import them by name) and torch-free
(a spawned worker starts in a fraction of a second)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square(item: tuple[str, int]) -> int:
    """``n²`` of ``(marker_dir, n)``."""
    return item[1] ** 2


def fail_first_attempt(item: tuple[str, int]) -> int:
    """Raises on the first attempt at each item (a marker file remembers it), then squares."""
    marker = Path(item[0]) / f"tried-{item[1]}"
    if not marker.exists():
        marker.write_text("")
        raise RuntimeError(f"first attempt at {item[1]} fails")
    return item[1] ** 2


def always_fail_on_3(item: tuple[str, int]) -> int:
    """Raises for item 3 on every attempt (counting them in a file), squares the others."""
    if item[1] == 3:
        with open(Path(item[0]) / "attempts-3", "a") as handle:
            handle.write("x")
        raise ValueError("item 3 is bad")
    return item[1] ** 2


def die_on_first_attempt_at_2(item: tuple[str, int]) -> int:
    """The worker running item 2 kills itself (SIGKILL) the first time; squares otherwise."""
    marker = Path(item[0]) / "died"
    if item[1] == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return item[1] ** 2


def sleep_unless_0(item: tuple[str, int]) -> int:
    """Item 0 returns at once; any other sleeps a minute (work to cancel), writing its pid."""
    if item[1] != 0:
        (Path(item[0]) / f"pid-{item[1]}").write_text(str(os.getpid()))
        time.sleep(60)
    return item[1]
