"""What a run ran on: recorded beside every result so a number can be traced to its machine.

Accuracies move with the machine, torch's thread count and the device (summation order), so
every run and comparison writes :func:`environment` into its outputs (``result.json``,
``summary.json``, ``sweep.json``).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from hwsim.models.device import device_name, resolve_device


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(device: torch.device | str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """hwsim, torch, brevitas and Python versions, the device (``auto`` resolved), the torch
    intra-op threads the work ran with (``threads``; None: this process' count), the CPU and
    its core count: what a reader needs to rerun a measurement on the same footing."""
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "hwsim": package("hwsim"),
        "torch": torch.__version__,
        "brevitas": package("brevitas"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device_name(resolve_device(device)),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }
