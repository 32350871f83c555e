"""Hessian operator and algorithms against ground truth: full autograd Hessians and quadratics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hwsim.models.analysis import (
    HessianOperator,
    MatrixOperator,
    get_flat_parameters,
    hutchinson_trace,
    set_flat_parameters,
    spectral_density,
    top_eigenvalues,
    true_residual,
    unflatten_like,
)


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def small_data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    return x, y


def full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The exact Hessian of the mean cross-entropy over all samples, by autograd.functional."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p for _, p in model.named_parameters()]

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, unflatten_like(flat, shapes), strict=True))
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss_of, get_flat_parameters(model))


@pytest.fixture(scope="module")
def mlp_case():
    model = small_mlp()
    x, y = small_data()
    # Unequal batches: the operator must weight them by size to give the full-data Hessian.
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]
    operator = HessianOperator(model, F.cross_entropy, batches)
    return model, operator, full_hessian(model, x, y)


def test_matvec_equals_full_hessian_product(mlp_case):
    _, operator, hessian = mlp_case
    v = torch.randn(operator.size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert operator.size == hessian.shape[0] == 5 * 7 + 7 + 7 * 3 + 3
    torch.testing.assert_close(operator.matvec(v), hessian @ v, rtol=1e-10, atol=1e-12)


def test_hutchinson_trace_within_three_standard_errors(mlp_case):
    _, operator, hessian = mlp_case
    result = hutchinson_trace(operator, samples=200, seed=0)
    exact = float(hessian.trace())
    assert result.stderr > 0
    assert len(result.samples) == 200
    assert abs(result.estimate - exact) <= 3 * result.stderr


def test_trace_is_deterministic_given_seed(mlp_case):
    _, operator, _ = mlp_case
    first = hutchinson_trace(operator, samples=5, seed=11)
    assert hutchinson_trace(operator, samples=5, seed=11) == first
    assert hutchinson_trace(operator, samples=5, seed=12).samples != first.samples


def test_top_eigenvalues_match_eigvalsh(mlp_case):
    _, operator, hessian = mlp_case
    exact = torch.linalg.eigvalsh(hessian).flip(0)[:3]
    result = top_eigenvalues(operator, k=3, seed=0)
    got = torch.tensor(result.eigenvalues, dtype=torch.float64)
    assert torch.all((got - exact).abs() <= 1e-3 * exact.abs())
    assert all(result.converged)
    # Eigenvectors: unit norm, orthogonal, and A v = λ v.
    vectors = result.eigenvectors
    torch.testing.assert_close(
        vectors @ vectors.T, torch.eye(3, dtype=torch.float64), atol=1e-8, rtol=0
    )
    for value, vector in zip(result.eigenvalues, vectors, strict=True):
        assert float((hessian @ vector - value * vector).norm()) <= 1e-4 * abs(value)


def test_largest_magnitude_eigenvalues(mlp_case):
    _, operator, hessian = mlp_case
    exact = torch.linalg.eigvalsh(hessian)
    exact = exact[exact.abs().argsort(descending=True)][:2]
    result = top_eigenvalues(operator, k=2, which="magnitude", seed=1)
    torch.testing.assert_close(
        torch.tensor(result.eigenvalues, dtype=torch.float64), exact, rtol=1e-3, atol=0
    )


class Quadratic(nn.Module):
    """Loss ½ xᵀ A x in the parameter x; its Hessian is A whatever the data."""

    def __init__(self, matrix: torch.Tensor, start: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("matrix", matrix)
        self.x = nn.Parameter(start.clone())

    def forward(self, _inputs: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.x @ self.matrix @ self.x


def quadratic_operator(
    spectrum: torch.Tensor, *, rotate: bool = True
) -> tuple[HessianOperator, torch.Tensor]:
    n = spectrum.shape[0]
    gen = torch.Generator().manual_seed(5)
    if rotate:
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        matrix = q @ torch.diag(spectrum) @ q.T
        matrix = 0.5 * (matrix + matrix.T)
    else:
        matrix = torch.diag(spectrum)
    model = Quadratic(matrix, torch.randn(n, generator=gen, dtype=torch.float64))
    batch = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1))
    return HessianOperator(model, lambda out, _y: out, batch), matrix


SPECTRUM = torch.cat(
    [torch.tensor([-2.0, 20.0, 15.0, 12.0]), torch.linspace(0.1, 5.0, 36)]
).double()


def test_quadratic_eigenvalues_exact():
    operator, matrix = quadratic_operator(SPECTRUM)
    torch.testing.assert_close(operator.matvec(torch.eye(40, dtype=torch.float64)[3]), matrix[3])
    result = top_eigenvalues(operator, k=3, seed=0)
    assert result.eigenvalues == pytest.approx([20.0, 15.0, 12.0], rel=1e-9)
    smallest = top_eigenvalues(MatrixOperator(-matrix), k=1, seed=0)
    assert smallest.eigenvalues[0] == pytest.approx(2.0, rel=1e-9)


def test_quadratic_trace_exact_for_diagonal_matrix():
    # zᵀ D z = tr(D) for every Rademacher z: zero variance.
    operator, _ = quadratic_operator(SPECTRUM, rotate=False)
    result = hutchinson_trace(operator, samples=10, seed=0)
    assert result.estimate == pytest.approx(float(SPECTRUM.sum()), rel=1e-12)
    assert result.stderr == pytest.approx(0.0, abs=1e-12)


def test_quadratic_trace_unbiased_with_known_variance():
    operator, matrix = quadratic_operator(SPECTRUM)
    samples = 400
    result = hutchinson_trace(operator, samples=samples, seed=0)
    assert abs(result.estimate - float(SPECTRUM.sum())) <= 3 * result.stderr
    off_diagonal = matrix - torch.diag(matrix.diagonal())
    expected_stderr = math.sqrt(2 * float((off_diagonal**2).sum()) / samples)
    assert result.stderr == pytest.approx(expected_stderr, rel=0.2)


def test_spectral_density_integrates_to_one_with_mean_trace_over_n():
    operator, _ = quadratic_operator(SPECTRUM)
    result = spectral_density(operator, steps=20, probes=30, grid_points=4000, seed=0)
    integral = float(torch.trapezoid(result.density, result.grid))
    assert integral == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(30, dtype=torch.float64))
    mean = float(torch.trapezoid(result.density * result.grid, result.grid))
    exact_mean = float(SPECTRUM.mean())
    assert mean == pytest.approx(result.mean(), rel=1e-3)
    # Each probe's quadrature mean is vᵀAv/‖v‖² for a Rademacher v: its spread is
    # ‖offdiag(A)‖_F·√2/n per probe; 30 probes bring it to about 0.15 here.
    assert result.mean() == pytest.approx(exact_mean, abs=0.5)
    assert float(result.nodes.min()) >= -2.0 - 1e-9
    assert float(result.nodes.max()) <= 20.0 + 1e-9


def test_spectral_density_with_full_krylov_space_finds_every_eigenvalue():
    operator, _ = quadratic_operator(SPECTRUM)
    result = spectral_density(operator, steps=40, probes=1, seed=3)
    torch.testing.assert_close(result.nodes[0], SPECTRUM.sort().values, rtol=1e-8, atol=1e-8)


def test_flat_parameters_round_trip():
    model = small_mlp()
    flat = get_flat_parameters(model)
    set_flat_parameters(model, flat * 2)
    torch.testing.assert_close(get_flat_parameters(model), flat * 2, rtol=0, atol=0)
    assert model[0].weight.shape == (7, 5)
    torch.testing.assert_close(model[0].weight.reshape(-1), flat[:35] * 2, rtol=0, atol=0)


class FeedbackAlignmentLinear(torch.autograd.Function):
    """y = x Wᵀ whose backward sends the error down through a fixed B instead of W."""

    @staticmethod
    def forward(ctx, x, weight, feedback):
        ctx.save_for_backward(x, weight, feedback)
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad_out):
        x, _weight, feedback = ctx.saved_tensors
        return grad_out @ feedback, grad_out.T @ x, None


class TwoLayer(nn.Module):
    def __init__(self, feedback_alignment: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(6, 4, generator=gen, dtype=torch.float64) * 0.5)
        self.w2 = nn.Parameter(torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.5)
        self.register_buffer("b2", torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.5)
        self.feedback_alignment = feedback_alignment

    def forward(self, x):
        h = torch.tanh(x @ self.w1.T)
        if self.feedback_alignment:
            return FeedbackAlignmentLinear.apply(h, self.w2, self.b2)
        return h @ self.w2.T


def test_double_backward_through_feedback_alignment_is_not_the_hessian():
    # Why every analysis runs on the BP view: the same forward weights, differentiated through
    # the FA backward, give a matrix that is neither the Hessian nor even symmetric.
    x, y = small_data()
    x = x[:, :4]
    bp_view, fa_model = TwoLayer(False), TwoLayer(True)
    batch = (x, y)
    bp = HessianOperator(bp_view, F.cross_entropy, batch)
    fa = HessianOperator(fa_model, F.cross_entropy, batch)
    eye = torch.eye(bp.size, dtype=torch.float64)
    bp_matrix = torch.stack([bp.matvec(e) for e in eye])
    fa_matrix = torch.stack([fa.matvec(e) for e in eye])
    names = ["w1", "w2"]

    def loss_of(flat):
        params = dict(zip(names, unflatten_like(flat, [bp_view.w1, bp_view.w2]), strict=True))
        return F.cross_entropy(functional_call(bp_view, params, (x,)), y)

    exact = torch.autograd.functional.hessian(loss_of, get_flat_parameters(bp_view))
    torch.testing.assert_close(bp_matrix, exact, rtol=1e-10, atol=1e-12)
    assert float((fa_matrix - exact).abs().max()) > 1e-2
    assert float((fa_matrix - fa_matrix.T).abs().max()) > 1e-2


# ------------------------------------------------------------------ residuals of returned pairs


def test_residuals_are_the_returned_pairs_true_residuals():
    # Ground truth: the quadratic's Hessian is the explicit matrix, so ‖A v − λ v‖ of each
    # returned pair can be computed directly, in float64.
    operator, matrix = quadratic_operator(SPECTRUM)
    result = top_eigenvalues(operator, k=3, seed=0)
    for value, vector, residual, relative in zip(
        result.eigenvalues,
        result.eigenvectors,
        result.residuals,
        result.relative_residuals,
        strict=True,
    ):
        direct = float((matrix @ vector - value * vector).norm())
        assert residual == pytest.approx(direct, rel=1e-6, abs=1e-12)
        assert relative == pytest.approx(residual / abs(value), rel=1e-12)
    assert all(result.converged)
    assert len(result.residual_estimates) == 3
    assert result.to_dict()["relative_residuals"] == list(result.relative_residuals)


def test_true_residual_of_a_perturbed_eigenvector_is_the_closed_form():
    # v = (u₁ + ε u₂)/√(1 + ε²) for orthonormal eigenvectors u₁, u₂ of A:
    # A v − λ₁ v = ε (λ₂ − λ₁) u₂ / √(1 + ε²), so ‖·‖ = ε |λ₂ − λ₁| / √(1 + ε²).
    spectrum = torch.tensor([7.0, 3.0, 1.0, 0.5], dtype=torch.float64)
    q, _ = torch.linalg.qr(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    operator = MatrixOperator(q @ torch.diag(spectrum) @ q.T)
    for eps in (0.0, 1e-6, 1e-2, 0.5):
        v = (q[:, 0] + eps * q[:, 1]) / math.sqrt(1 + eps**2)
        expected = eps * 4.0 / math.sqrt(1 + eps**2)
        assert true_residual(operator, v, 7.0) == pytest.approx(expected, rel=1e-9, abs=1e-13)


def test_float32_estimate_says_converged_where_the_true_residual_does_not():
    # A float32 operator with eigenvalues 1e6, 2, 1 and a cluster near 0. Lanczos' own bound
    # β_m |s_{m,i}| is far below tol·|λ| for all three pairs, but the float32 products carry
    # rounding of order eps₃₂·‖A‖ ≈ 0.06, so the 2nd and 3rd vectors are off by ~1% in relative
    # residual. Ground truth: the residual of each returned pair under the exact float32
    # matrix, computed in float64.
    n, tol = 100, 1e-4
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    spectrum = torch.cat(
        [torch.tensor([1e6, 2.0, 1.0], dtype=torch.float64), torch.linspace(5e-4, -5e-4, n - 3)]
    )
    matrix = (q * spectrum) @ q.T
    matrix = (0.5 * (matrix + matrix.T)).float()
    result = top_eigenvalues(MatrixOperator(matrix), k=3, tol=tol, seed=0)
    exact = [
        float((matrix.double() @ v.double() - value * v.double()).norm())
        for value, v in zip(result.eigenvalues, result.eigenvectors, strict=True)
    ]
    values = [abs(v) for v in result.eigenvalues]
    # The old report: every pair converged by the exact-arithmetic estimate.
    assert all(e <= tol * v for e, v in zip(result.residual_estimates, values, strict=True))
    # The truth: pairs 2 and 3 are far from converged, and the result says so.
    assert exact[1] > 10 * tol * values[1] and exact[2] > 10 * tol * values[2]
    assert result.converged == (True, False, False)
    # The reported residual is the true one up to the rounding of one float32 product with A.
    for got, want in zip(result.residuals, exact, strict=True):
        assert abs(got - want) <= 1e-7 * 1e6
    # The estimate understates the truth by orders of magnitude.
    assert exact[1] / result.residual_estimates[1] > 1e2
