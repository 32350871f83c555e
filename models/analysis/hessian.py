"""Matrix-free Hessian of a loss over a module's parameters, and the algorithms that use it.

The split follows hessian-eigenthings: an *operator* knows how to multiply a vector by the
Hessian (:class:`HessianOperator`, or :class:`MatrixOperator` for a dense matrix), and the
*algorithms* (:func:`hutchinson_trace`, :func:`top_eigenvalues`, :func:`spectral_density`) only
call ``operator.matvec``. The algorithms take keyword-only arguments and an explicit ``seed``, are
deterministic given the seed, and return frozen dataclasses.

The Hessian is only the Hessian if autograd computes true gradients: pass the *BP view* of a
model trained with feedback alignment, whose backward sends the error through fixed feedback
matrices ``B`` instead of ``Wᵀ`` (docs/analyses.md). A double backward through an FA layer
differentiates the FA update, which is not a gradient, so its "Hessian" is not symmetric and
means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets)`` returning the *mean* loss over the batch (a scalar)."""

Batch = tuple[Tensor, Tensor]
Batches = Batch | Iterable[Batch]
"""One ``(x, y)`` batch, or an iterable of them (a list, a DataLoader)."""


# --------------------------------------------------------------------------------------------
# Parameters as one vector
# --------------------------------------------------------------------------------------------


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require a gradient, in ``model.parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def flatten_tensors(tensors: Iterable[Tensor]) -> Tensor:
    """Concatenate tensors into one detached 1-D vector (a copy)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def unflatten_like(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat ``vector`` into views shaped like the tensors in ``like``."""
    total = sum(t.numel() for t in like)
    if vector.shape != (total,):
        raise ValueError(f"expected a vector of shape ({total},), got {tuple(vector.shape)}")
    out: list[Tensor] = []
    offset = 0
    for t in like:
        out.append(vector[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def get_flat_parameters(model: nn.Module) -> Tensor:
    """The trainable parameters of ``model`` as one flat vector (a detached copy)."""
    return flatten_tensors(trainable_parameters(model))


@torch.no_grad()
def set_flat_parameters(model: nn.Module, vector: Tensor) -> None:
    """Copy a flat vector into the trainable parameters of ``model`` (in place)."""
    params = trainable_parameters(model)
    for p, v in zip(params, unflatten_like(vector.to(params[0].device), params), strict=True):
        p.copy_(v)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a module with neither.

    The analyses compute where the model lives: data given on another device is moved there.
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def as_batch_list(batches: Batches, device: torch.device | None = None) -> list[Batch]:
    """Normalize one ``(x, y)`` batch or an iterable of batches to a list of batches.

    The list is materialized once so that every pass sees the same batches in the same order:
    an iterative eigensolver needs a fixed operator, and a shuffling DataLoader is not one.
    With ``device``, every batch is moved there (a no-op for batches already on it).
    """
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], Tensor):
        out = [batches]
    else:
        out = [(x, y) for x, y in batches]
    if not out:
        raise ValueError("no batches given")
    if device is not None:
        out = [(x.to(device), y.to(device)) for x, y in out]
    return out


# --------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------


class LinearOperator(Protocol):
    """A symmetric linear map known only through its product with a vector."""

    @property
    def size(self) -> int:
        """Dimension ``n`` of the (n × n) operator."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the vectors it accepts and returns."""
        ...

    @property
    def device(self) -> torch.device:
        """Device of the vectors it accepts and returns."""
        ...

    def matvec(self, vector: Tensor) -> Tensor:
        """``A @ vector`` for a flat vector of length ``size``."""
        ...


class HessianOperator:
    """Hessian of the dataset loss with respect to a module's trainable parameters.

    The loss is the sample-weighted mean of ``loss_fn(model(x), y)`` over ``batches``, so with a
    mean-reduced ``loss_fn`` it is the mean loss over all samples. Each :meth:`matvec` runs one
    forward, one backward with ``create_graph=True`` and one double backward per batch. The model
    is used as it is: put it in ``eval()`` mode first if it has dropout or batch norm, or the
    operator is not a fixed matrix.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Batches,
        *,
        params: Sequence[Tensor] | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.params = list(params) if params is not None else trainable_parameters(model)
        if not self.params:
            raise ValueError("model has no trainable parameters")
        # The products run where the parameters live; data elsewhere is moved there once.
        self.batches = as_batch_list(batches, self.params[0].device)
        self._size = sum(p.numel() for p in self.params)
        self._samples = sum(int(x.shape[0]) for x, _ in self.batches)

    @property
    def size(self) -> int:
        """Number of parameters ``n``."""
        return self._size

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self.params[0].dtype

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.params[0].device

    def unflatten(self, vector: Tensor) -> list[Tensor]:
        """A flat vector split into tensors shaped like the parameters."""
        return unflatten_like(vector, self.params)

    def loss(self) -> float:
        """The dataset loss at the current parameters."""
        with torch.no_grad():
            total = 0.0
            for x, y in self.batches:
                total += float(self.loss_fn(self.model(x), y)) * x.shape[0]
        return total / self._samples

    def gradient(self) -> Tensor:
        """The flat gradient of the dataset loss."""
        total = torch.zeros(self._size, dtype=self.dtype, device=self.device)
        for x, y in self.batches:
            loss = self.loss_fn(self.model(x), y)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
            total += flatten_tensors(_zeros_for_none(grads, self.params)) * x.shape[0]
        return total / self._samples

    def matvec(self, vector: Tensor) -> Tensor:
        """Hessian-vector product ``H @ vector`` by double backward."""
        if vector.shape != (self._size,):
            raise ValueError(f"expected a vector of shape ({self._size},), got {vector.shape}")
        pieces = self.unflatten(vector.to(dtype=self.dtype, device=self.device))
        total = torch.zeros(self._size, dtype=self.dtype, device=self.device)
        for x, y in self.batches:
            loss = self.loss_fn(self.model(x), y)
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            used = [
                (g, p, v)
                for g, p, v in zip(grads, self.params, pieces, strict=True)
                if g is not None
            ]
            hvp = torch.autograd.grad(
                [g for g, _, _ in used],
                self.params,
                grad_outputs=[v for _, _, v in used],
                allow_unused=True,
            )
            total += flatten_tensors(_zeros_for_none(hvp, self.params)) * x.shape[0]
        return total / self._samples


class MatrixOperator:
    """A dense symmetric matrix as an operator (for tests and small problems)."""

    def __init__(self, matrix: Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix

    @property
    def size(self) -> int:
        """Dimension ``n``."""
        return int(self.matrix.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the matrix."""
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        """Device of the matrix."""
        return self.matrix.device

    def matvec(self, vector: Tensor) -> Tensor:
        """``matrix @ vector``."""
        return self.matrix @ vector


def _zeros_for_none(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> list[Tensor]:
    # A parameter the loss does not reach has a zero gradient and zero Hessian rows.
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson estimate of ``tr(A)``.

    ``estimate`` is the mean of the per-probe values ``zᵀAz`` in ``samples``; ``stderr`` is
    their sample standard deviation over ``sqrt(len(samples))`` (nan for one probe).
    """

    estimate: float
    stderr: float
    samples: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {"estimate": self.estimate, "stderr": self.stderr, "samples": list(self.samples)}


@dataclass(frozen=True)
class EigenResult:
    """Top eigenpairs of a symmetric operator, largest first.

    ``eigenvectors`` is a ``[k, n]`` tensor of unit-norm Ritz vectors (row ``i`` belongs to
    ``eigenvalues[i]``; split one into parameter shapes with ``HessianOperator.unflatten``).
    ``residuals[i]`` is the true residual ``‖A v_i − λ_i v_i‖₂`` of the *returned* pair: one
    more operator product per vector, the difference and its norm taken in float64.
    ``relative_residuals[i]`` is that over ``|λ_i|``, and ``converged[i]`` says it is at most
    ``tol``: then a true eigenvalue lies within ``tol · |λ_i|`` of ``λ_i`` (for a symmetric
    ``A``, some eigenvalue is within ``‖r‖`` of any unit vector's ``λ``).
    ``residual_estimates[i]`` is Lanczos' own exact-arithmetic bound ``β_m |s_{m,i}|``, which
    decides when to stop; in floating point it can understate the true residual by orders of
    magnitude (it does not see rounding in the products or the basis). ``iterations`` is the
    number of Lanczos steps; the residual check adds ``k`` operator products to that.
    """

    eigenvalues: tuple[float, ...]
    eigenvectors: Tensor
    residuals: tuple[float, ...]
    converged: tuple[bool, ...]
    iterations: int
    residual_estimates: tuple[float, ...] = ()

    @property
    def relative_residuals(self) -> tuple[float, ...]:
        """``residuals[i] / |eigenvalues[i]|`` (inf for an eigenvalue of exactly zero)."""
        return tuple(_relative(r, v) for r, v in zip(self.residuals, self.eigenvalues, strict=True))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (without the eigenvectors)."""
        return {
            "eigenvalues": list(self.eigenvalues),
            "residuals": list(self.residuals),
            "relative_residuals": list(self.relative_residuals),
            "residual_estimates": list(self.residual_estimates),
            "converged": list(self.converged),
            "iterations": self.iterations,
        }


def _relative(residual: float, value: float) -> float:
    if value == 0.0:
        return 0.0 if residual == 0.0 else math.inf
    return residual / abs(value)


@dataclass(frozen=True)
class DensityResult:
    """Spectral density estimated by stochastic Lanczos quadrature.

    ``density[i]`` is the Gaussian-smoothed density at ``grid[i]`` (it integrates to about 1
    over the grid). ``nodes`` and ``weights`` are the raw quadrature, ``[probes, steps]``: Ritz
    values and the squared first components of their eigenvectors; each row's weights sum to 1.
    A probe whose Lanczos run ended early (an invariant subspace) is padded with zero weights.
    ``sigma`` is the smoothing width used.
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float

    def mean(self) -> float:
        """Mean of the estimated spectrum, ``≈ tr(A) / n``."""
        return float((self.nodes * self.weights).sum() / self.weights.sum())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "grid": self.grid.tolist(),
            "density": self.density.tolist(),
            "nodes": self.nodes.tolist(),
            "weights": self.weights.tolist(),
            "sigma": self.sigma,
        }


# --------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    # Probes are drawn on the CPU so that a seed gives the same numbers on every device.
    return torch.Generator(device="cpu").manual_seed(seed)


def _rademacher(size: int, generator: torch.Generator, like: LinearOperator) -> Tensor:
    signs = torch.randint(0, 2, (size,), generator=generator, dtype=torch.int8) * 2 - 1
    return signs.to(dtype=like.dtype, device=like.device)


def hutchinson_trace(operator: LinearOperator, *, samples: int = 100, seed: int = 0) -> TraceResult:
    """Estimate ``tr(A)`` as the mean of ``zᵀAz`` over ``samples`` Rademacher probes ``z``.

    Unbiased; the variance of one probe is ``2 Σ_{i≠j} A_ij²`` (zero for a diagonal ``A``).
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    generator = _generator(seed)
    values = []
    for _ in range(samples):
        z = _rademacher(operator.size, generator, operator)
        values.append(float(torch.dot(z, operator.matvec(z))))
    estimate = math.fsum(values) / samples
    if samples > 1:
        variance = math.fsum((v - estimate) ** 2 for v in values) / (samples - 1)
        stderr = math.sqrt(variance / samples)
    else:
        stderr = math.nan
    return TraceResult(estimate=estimate, stderr=stderr, samples=tuple(values))


@dataclass
class _Lanczos:
    alphas: list[float]
    betas: list[float]  # betas[j] couples basis[j] and basis[j + 1]; the last one is the residual
    basis: Tensor  # [steps, n]


def _lanczos(
    operator: LinearOperator,
    start: Tensor,
    *,
    steps: int,
    stop: Callable[[_Lanczos], bool] | None = None,
) -> _Lanczos:
    """Symmetric Lanczos with full reorthogonalization (Gram–Schmidt applied twice).

    Full reorthogonalization costs O(steps² n) but keeps the basis orthonormal, so no spurious
    copies of converged eigenvalues ("ghosts") appear; for Hessians the operator product costs
    far more than that anyway.
    """
    n = operator.size
    steps = min(steps, n)
    basis = torch.zeros(steps, n, dtype=operator.dtype, device=operator.device)
    basis[0] = start / start.norm()
    state = _Lanczos(alphas=[], betas=[], basis=basis[:1])
    scale = 0.0
    for j in range(steps):
        w = operator.matvec(basis[j])
        alpha = float(torch.dot(basis[j], w))
        w = w - alpha * basis[j]
        if j > 0:
            w = w - state.betas[-1] * basis[j - 1]
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        state.alphas.append(alpha)
        state.betas.append(beta)
        state.basis = basis[: j + 1]
        scale = max(scale, abs(alpha), beta)
        # An (almost) invariant Krylov subspace: the Ritz values are exact eigenvalues.
        if beta <= 1e-10 * max(scale, 1e-30) or j + 1 == steps:
            break
        if stop is not None and stop(state):
            break
        basis[j + 1] = w / beta
    return state


def _ritz(state: _Lanczos) -> tuple[Tensor, Tensor]:
    m = len(state.alphas)
    tri = torch.zeros(m, m, dtype=torch.float64)
    tri.diagonal().copy_(torch.tensor(state.alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(state.betas[: m - 1], dtype=torch.float64)
        tri.diagonal(1).copy_(off)
        tri.diagonal(-1).copy_(off)
    return torch.linalg.eigh(tri)


def _ordered(values: Tensor, which: str) -> Tensor:
    key = values.abs() if which == "magnitude" else values
    return torch.argsort(key, descending=True)


def top_eigenvalues(
    operator: LinearOperator,
    *,
    k: int = 1,
    which: Literal["largest", "magnitude"] = "largest",
    max_steps: int | None = None,
    tol: float = 1e-6,
    seed: int = 0,
) -> EigenResult:
    """The ``k`` largest eigenvalues (``which="largest"``, algebraic) or the ``k`` largest in
    absolute value (``which="magnitude"``), with eigenvectors, by Lanczos.

    Lanczos runs from a seeded Gaussian start vector with full reorthogonalization until the
    residual bound ``β_m |s_{m,i}|`` of each wanted Ritz pair is below ``tol · |λ_i|``, or
    ``max_steps`` operator products (default ``min(n, max(60, 4k))``). That bound holds in exact
    arithmetic only, so each returned pair is then checked by one more product
    (:func:`true_residual`): ``residuals`` and ``converged`` are the returned vectors' true
    residuals (:class:`EigenResult`). In exact arithmetic a
    single Krylov space holds one copy of a repeated eigenvalue: for a spectrum with exact
    multiplicities the later copies appear only through rounding. The Lanczos basis takes
    ``max_steps × n`` numbers of memory.
    """
    n = operator.size
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    steps = min(n, max_steps if max_steps is not None else max(60, 4 * k))
    if steps < k:
        raise ValueError(f"max_steps={steps} is below k={k}")
    generator = _generator(seed)
    start = torch.randn(n, generator=generator, dtype=torch.float64)
    start = start.to(dtype=operator.dtype, device=operator.device)

    def converged(state: _Lanczos) -> bool:
        if len(state.alphas) < k:
            return False
        theta, s = _ritz(state)
        wanted = _ordered(theta, which)[:k]
        residual = state.betas[-1] * s[-1, wanted].abs()
        return bool((residual <= tol * theta[wanted].abs().clamp(min=1e-30)).all())

    state = _lanczos(operator, start, steps=steps, stop=converged)
    theta, s = _ritz(state)
    wanted = _ordered(theta, which)[:k]
    estimate = state.betas[-1] * s[-1, wanted].abs()
    vectors = s[:, wanted].T.to(dtype=operator.dtype, device=operator.device) @ state.basis
    vectors = vectors / vectors.norm(dim=1, keepdim=True)
    values = tuple(float(v) for v in theta[wanted])
    residuals = tuple(true_residual(operator, vectors[i], value) for i, value in enumerate(values))
    return EigenResult(
        eigenvalues=values,
        eigenvectors=vectors,
        residuals=residuals,
        converged=tuple(_relative(r, v) <= tol for r, v in zip(residuals, values, strict=True)),
        iterations=len(state.alphas),
        residual_estimates=tuple(float(r) for r in estimate),
    )


def true_residual(operator: LinearOperator, vector: Tensor, value: float) -> float:
    """``‖A v − λ v‖₂`` of a candidate eigenpair ``(λ, v)``, by one operator product.

    The product is in the operator's dtype (it is the operator); the difference and the norm are
    taken in float64, so the cancellation between ``A v`` and ``λ v`` adds no rounding of its
    own.
    """
    product = operator.matvec(vector.to(dtype=operator.dtype, device=operator.device))
    difference = product.detach().to(torch.float64) - value * vector.detach().to(torch.float64)
    return float(torch.linalg.vector_norm(difference))


def spectral_density(
    operator: LinearOperator,
    *,
    steps: int = 30,
    probes: int = 4,
    grid_points: int = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> DensityResult:
    """Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

    For each of ``probes`` Rademacher probes ``v`` (normalized), ``steps`` Lanczos steps give a
    Gauss quadrature ``Σ_k w_k δ(λ − θ_k)`` of the spectral measure seen from ``v``, whose
    expectation is the eigenvalue density ``(1/n) Σ_i δ(λ − λ_i)`` (Ghorbani et al. 2019, as in
    PyHessian). The average over probes is smoothed with a Gaussian of width ``sigma`` (default
    1% of the spread of the nodes) on a grid spanning the nodes ± 5 sigma.
    """
    if steps < 1 or probes < 1 or grid_points < 2:
        raise ValueError("steps, probes must be at least 1 and grid_points at least 2")
    generator = _generator(seed)
    steps = min(steps, operator.size)
    nodes = torch.zeros(probes, steps, dtype=torch.float64)
    weights = torch.zeros(probes, steps, dtype=torch.float64)
    for i in range(probes):
        start = _rademacher(operator.size, generator, operator)
        state = _lanczos(operator, start, steps=steps)
        theta, s = _ritz(state)
        m = theta.shape[0]
        nodes[i, :m] = theta
        weights[i, :m] = s[0] ** 2
        if m < steps:
            nodes[i, m:] = theta[-1]
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.01
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points, dtype=torch.float64)
    flat_nodes, flat_weights = nodes.reshape(-1), weights.reshape(-1) / probes
    kernel = torch.exp(-0.5 * ((grid[:, None] - flat_nodes[None, :]) / sigma) ** 2)
    density = kernel @ flat_weights / (sigma * math.sqrt(2 * math.pi))
    return DensityResult(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma)
