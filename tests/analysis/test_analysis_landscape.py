"""Loss surface and trajectory PCA against closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwsim.models.analysis import (
    HessianOperator,
    dataset_loss,
    get_flat_parameters,
    loss_surface,
    top_eigenvalues,
    trajectory_pca,
)


def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=gen)
    return model, [(x[:20], y[:20]), (x[20:], y[20:])]


def snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_bit_exact(model, saved):
    for p, s in zip(model.parameters(), saved, strict=True):
        assert torch.equal(p, s)


def test_surface_origin_is_model_loss_and_weights_restored_exactly():
    model, batches = model_and_data()
    saved = snapshot(model)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        loss = float(F.cross_entropy(model(x), y))
    result = loss_surface(
        model, F.cross_entropy, batches, alphas=[-0.5, 0.0, 0.5], betas=[-1, 0, 1]
    )
    assert result.center_loss == pytest.approx(loss, rel=1e-12)
    assert result.loss[1][1] == result.center_loss
    assert len(result.loss) == 3 and all(len(row) == 3 for row in result.loss)
    assert result.loss[0][0] != result.loss[1][1]
    assert_bit_exact(model, saved)


def test_surface_default_directions_are_top_hessian_eigenvectors():
    model, batches = model_and_data()
    result = loss_surface(model, F.cross_entropy, batches, alphas=[0.0], betas=[0.0])
    top = top_eigenvalues(HessianOperator(model, F.cross_entropy, batches), k=2, seed=0)
    assert result.direction_eigenvalues == pytest.approx(top.eigenvalues, rel=1e-9)
    assert result.directions.shape == (2, get_flat_parameters(model).numel())


def test_surface_restores_weights_after_an_error():
    model, batches = model_and_data()
    saved = snapshot(model)
    calls = []

    def failing_loss(outputs, targets):
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("boom")
        return F.cross_entropy(outputs, targets)

    directions = torch.randn(2, get_flat_parameters(model).numel(), dtype=torch.float64)
    with pytest.raises(RuntimeError, match="boom"):
        loss_surface(model, failing_loss, batches, directions=directions)
    assert_bit_exact(model, saved)


class Quadratic(nn.Module):
    def __init__(self, spectrum):
        super().__init__()
        self.register_buffer("spectrum", spectrum)
        self.x = nn.Parameter(torch.zeros_like(spectrum))

    def forward(self, _inputs):
        return 0.5 * (self.spectrum * self.x**2).sum()


def test_surface_on_quadratic_along_eigenvectors_is_closed_form():
    # At the minimum x=0 of ½ Σ λ_i x_i², along the top two eigenvectors the loss is ½(λ₁α² + λ₂β²).
    model = Quadratic(torch.tensor([1.0, 7.0, 3.0, 0.5], dtype=torch.float64))
    batch = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))
    grid = [-1.0, -0.25, 0.0, 0.5]
    result = loss_surface(model, lambda out, _y: out, batch, alphas=grid, betas=grid)
    assert result.direction_eigenvalues == pytest.approx([7.0, 3.0], rel=1e-12)
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            assert result.loss[i][j] == pytest.approx(0.5 * (7 * a**2 + 3 * b**2), abs=1e-12)


def test_trajectory_straight_line_explains_all_variance():
    model, batches = model_and_data()
    saved = snapshot(model)
    final = get_flat_parameters(model)
    direction = torch.randn(
        final.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    snapshots = [final + (1 - t / 9) * direction for t in range(10)]
    result = trajectory_pca(
        snapshots, model=model, loss_fn=F.cross_entropy, batches=batches, surface_points=5
    )
    assert result.explained_variance[0] == pytest.approx(1.0, abs=1e-12)
    assert result.explained_variance[1] == pytest.approx(0.0, abs=1e-12)
    first = torch.tensor([c[0] for c in result.coordinates])
    expected = torch.tensor([(1 - t / 9) * float(direction.norm()) for t in range(10)])
    torch.testing.assert_close(first.abs(), expected, rtol=1e-9, atol=1e-9)
    assert max(abs(c[1]) for c in result.coordinates) < 1e-9
    assert result.coordinates[-1] == pytest.approx((0.0, 0.0), abs=1e-12)
    # The loss along the path is the loss at each snapshot's weights.
    assert result.path_loss is not None
    assert result.path_loss[-1] == pytest.approx(dataset_loss(model, F.cross_entropy, batches))
    assert result.surface is not None
    assert len(result.surface.loss) == 5
    assert_bit_exact(model, saved)


def test_trajectory_two_orthogonal_moves_split_the_variance():
    final = torch.zeros(6, dtype=torch.float64)
    e1, e2 = torch.eye(6, dtype=torch.float64)[:2]
    result = trajectory_pca([final + 3 * e1, final + 4 * e2, final])
    assert result.explained_variance == pytest.approx((16 / 25, 9 / 25), abs=1e-12)
    assert result.path_loss is None and result.surface is None
