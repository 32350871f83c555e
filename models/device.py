"""Where tensors live: ``--device auto|cpu|cuda`` resolved once, the same way everywhere.

Random draws (initial weights, feedback matrices, epoch orders, brSF redraws, attack and
corruption noise) come from CPU generators and are then moved to the device, so a seed gives the
same numbers on every device; what differs between devices is only floating-point summation
order in the kernels (docs/learning.md, "Devices and determinism").
"""

from __future__ import annotations

import torch

from hwsim.core.errors import InputError

#: The values ``--device`` accepts.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or ``None``) is the GPU when torch sees one, else the CPU; ``cpu``; ``cuda``
    or ``cuda:N``. Asking for CUDA on a machine without one is an :class:`InputError`."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {spec!r}: this torch ({torch.__version__}) sees no CUDA GPU; use "
                "--device cpu (or auto, which falls back to the CPU)"
            )
        try:
            device = torch.device(text)
        except RuntimeError:
            raise InputError(f"device {spec!r}: expected cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return device
    raise InputError(f"device {spec!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def device_name(device: torch.device) -> str:
    """What the device is, in words: ``cpu`` or the GPU's name (``cuda:0 (NVIDIA H200)``)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
