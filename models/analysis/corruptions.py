"""Common image corruptions at severities 1–5, in pure torch.

Value range. Every corruption works on intensities in ``[0, 1]``. Inputs in another range, raw
(``[0, 255]``) or standardized (``(x − μ)/σ``), are handled by passing the range of *valid* inputs
as ``value_range=(low, high)`` (for MNIST standardized with μ=0.1307, σ=0.3081 that is
``(-0.4242, 2.8215)``): the images are mapped to ``[0, 1]``, corrupted, clipped to ``[0, 1]`` and
mapped back, so the output lies in ``value_range`` like a clean image.

Shapes. Images are ``[N, C, H, W]``. Flattened images such as MNIST's ``[N, 784]`` are accepted
with ``image_shape=(1, 28, 28)`` (or ``(28, 28)``); the output has the input's shape.

Severity table (Hendrycks & Dietterich 2019, "ImageNet-C"/"CIFAR-10-C" definitions). Noise acts
per pixel, so its parameters do not depend on the image size and are ImageNet-C's; the spatial
ones are tied to the image size: blur sigma scales with ``min(H, W)`` from CIFAR-10-C's 32-pixel
values, and pixelate gives the downsampled side as a fraction of ``H`` and ``W``.

=============== ================================ ==== ==== ==== ==== ====
corruption      parameter                          1    2    3    4    5
=============== ================================ ==== ==== ==== ==== ====
gaussian_noise  noise std (of [0, 1] intensity)  0.08 0.12 0.18 0.26 0.38
shot_noise      photons per unit intensity, λ    60   25   12   5    3
impulse_noise   fraction of pixels set to 0 or 1 0.03 0.06 0.09 0.17 0.27
gaussian_blur   sigma in px × 32 / min(H, W)     0.4  0.6  0.7  0.8  1.0
contrast        factor c on (x − image mean)     0.4  0.3  0.2  0.1  0.05
brightness      added to intensity               0.1  0.2  0.3  0.4  0.5
pixelate        downsampled side / original side 0.6  0.5  0.4  0.3  0.25
=============== ================================ ==== ==== ==== ==== ====

Definitions: gaussian_noise ``x + σ·ε``; shot_noise ``Poisson(λx)/λ``; impulse_noise sets a
fraction of pixel values (each channel on its own, as in ImageNet-C) to 0 or 1 with equal odds;
gaussian_blur convolves each channel with a Gaussian of that sigma (radius ``ceil(3σ)``, reflected
borders); contrast ``(x − m)·c + m`` with ``m`` the mean of each image; brightness ``x + b``
(on every channel; ImageNet-C adds it to the HSV value channel); pixelate resamples to
``round(H·f) × round(W·f)`` and back with an exact box filter (PIL's BOX, as ImageNet-C), each
severity at least one pixel smaller than the one before (:func:`pixelate_sides`; 28 px gives
17, 14, 11, 8, 7). All outputs are clipped to ``[0, 1]``. ImageNet-C's JPEG, motion, snow and
similar corruptions are not included.

Scaling blur with the image size makes it faint on small images: at 28 px sigma is 0.35–0.875 px,
and on 8 × 8 digits (0.1–0.25 px) it barely changes the image.

Random corruptions draw from a ``torch.Generator`` seeded with ``seed``: the same seed gives the
same images on every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwsim.models.analysis.evaluation import accuracy
from hwsim.models.analysis.hessian import model_device

SEVERITY_PARAMETERS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60.0, 25.0, 12.0, 5.0, 3.0),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
}
"""Each corruption's parameter at severities 1–5 (see the module docstring for units)."""

CORRUPTION_NAMES: tuple[str, ...] = tuple(SEVERITY_PARAMETERS)
"""Names accepted by :func:`corrupt`."""

# The blur sigmas above are CIFAR-10-C's, defined for 32-pixel images.
_BLUR_REFERENCE_SIDE = 32


def _gaussian_noise(u: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    std = SEVERITY_PARAMETERS["gaussian_noise"][severity - 1]
    noise = torch.randn(u.shape, generator=generator, dtype=u.dtype)
    return u + std * noise.to(u.device)


def _shot_noise(u: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    photons = SEVERITY_PARAMETERS["shot_noise"][severity - 1]
    rates = (u.clamp(0.0, 1.0) * photons).cpu()
    return torch.poisson(rates, generator=generator).to(u.device, u.dtype) / photons


def _impulse_noise(u: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    amount = SEVERITY_PARAMETERS["impulse_noise"][severity - 1]
    hit = torch.rand(u.shape, generator=generator, dtype=u.dtype) < amount
    salt = torch.rand(u.shape, generator=generator, dtype=u.dtype) < 0.5
    return torch.where(hit.to(u.device), salt.to(u.device, u.dtype), u)


def _gaussian_blur(u: Tensor, severity: int, _: torch.Generator) -> Tensor:
    sigma_at_32 = SEVERITY_PARAMETERS["gaussian_blur"][severity - 1]
    _, channels, height, width = u.shape
    sigma = sigma_at_32 * min(height, width) / _BLUR_REFERENCE_SIDE
    # Reflect padding needs radius < side; beyond 3 sigma the weights are negligible anyway.
    radius = min(math.ceil(3 * sigma), height - 1, width - 1)
    if radius < 1:
        return u
    offsets = torch.arange(-radius, radius + 1, dtype=u.dtype, device=u.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(u, (radius, radius, radius, radius), mode="reflect")
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(padded, rows, groups=channels)
    return F.conv2d(out, cols, groups=channels)


def _contrast(u: Tensor, severity: int, _: torch.Generator) -> Tensor:
    factor = SEVERITY_PARAMETERS["contrast"][severity - 1]
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    return (u - mean) * factor + mean


def _brightness(u: Tensor, severity: int, _: torch.Generator) -> Tensor:
    return u + SEVERITY_PARAMETERS["brightness"][severity - 1]


def _box_matrix(size_in: int, size_out: int, like: Tensor) -> Tensor:
    # Exact box resampling (PIL's BOX filter): output pixel o covers the input interval
    # [o·s, (o+1)·s) with s = size_in/size_out and averages the input pixels by overlap length.
    scale = size_in / size_out
    low = torch.arange(size_out, dtype=torch.float64)[:, None] * scale
    pixel = torch.arange(size_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(low + scale, pixel + 1) - torch.maximum(low, pixel)).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).to(like.device, like.dtype)


def pixelate_sides(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """The downsampled ``(height, width)`` that pixelate uses at severities 1–5.

    ``round(side · fraction)``, but at least one pixel smaller than at the severity before (and at
    least 1): on small images the rounded sides would repeat (8 px: 5, 4, 3, 2, 2).
    """
    sides = []
    for axis in (height, width):
        previous, axis_sides = axis, []
        for fraction in SEVERITY_PARAMETERS["pixelate"]:
            side = max(1, min(round(axis * fraction), previous - 1))
            axis_sides.append(side)
            previous = side
        sides.append(axis_sides)
    return tuple(zip(sides[0], sides[1], strict=True))


def _pixelate(u: Tensor, severity: int, _: torch.Generator) -> Tensor:
    height, width = u.shape[-2:]
    small_height, small_width = pixelate_sides(height, width)[severity - 1]
    down_rows, down_cols = _box_matrix(height, small_height, u), _box_matrix(width, small_width, u)
    up_rows, up_cols = _box_matrix(small_height, height, u), _box_matrix(small_width, width, u)
    small = down_rows @ u @ down_cols.T
    return up_rows @ small @ up_cols.T


# One hook per corruption: (images in [0, 1], severity, generator) -> corrupted images.
_CORRUPTIONS: dict[str, Callable[[Tensor, int, torch.Generator], Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "pixelate": _pixelate,
}


def corrupt(
    x: Tensor,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    image_shape: Sequence[int] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Apply corruption ``name`` at ``severity`` (1–5) to a batch of images.

    ``x`` is ``[N, C, H, W]``, or ``[N, ...]`` with ``image_shape`` ``(C, H, W)`` or ``(H, W)``.
    Values are assumed to lie in ``value_range``; the result has the shape, dtype and range of
    the input. Deterministic given ``seed``.
    """
    if name not in _CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTION_NAMES)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be increasing, got {value_range}")
    if image_shape is not None:
        shape = tuple(image_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W) or (H, W), got {image_shape}")
        images = x.reshape(x.shape[0], *shape)
    elif x.ndim == 4:
        images = x
    else:
        raise ValueError(f"expected [N, C, H, W] images or an image_shape, got {tuple(x.shape)}")
    if not images.is_floating_point():
        raise TypeError("corruptions need floating-point images")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    unit = (images - low) / (high - low)
    out = _CORRUPTIONS[name](unit, severity, generator).clamp(0.0, 1.0)
    return (out * (high - low) + low).reshape(x.shape).to(x.dtype)


@dataclass(frozen=True)
class CorruptionResult:
    """Accuracy on ``samples`` images under one corruption at one severity."""

    corruption: str
    severity: int
    parameter: float
    accuracy: float
    samples: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "corruption": self.corruption,
            "severity": self.severity,
            "parameter": self.parameter,
            "accuracy": self.accuracy,
            "samples": self.samples,
        }


def corruption_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    names: Sequence[str] = CORRUPTION_NAMES,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    image_shape: Sequence[int] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 1000,
) -> tuple[CorruptionResult, ...]:
    """Accuracy of ``model`` (argmax of outputs) on corrupted copies of ``(x, y)``.

    One result per corruption and severity, in the order given. The model sees inputs of the
    shape of ``x``. It is used as given: call ``eval()`` first. The images are moved to the
    model's device and corrupted there (the random draws come from a CPU generator, so a seed
    gives the same corruption on every device).
    """
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    results = []
    for name in names:
        for severity in severities:
            corrupted = corrupt(
                x, name, severity, seed=seed, image_shape=image_shape, value_range=value_range
            )
            results.append(
                CorruptionResult(
                    corruption=name,
                    severity=severity,
                    parameter=SEVERITY_PARAMETERS[name][severity - 1],
                    accuracy=accuracy(model, corrupted, y, batch_size=batch_size),
                    samples=int(x.shape[0]),
                )
            )
    return tuple(results)
