"""Loss landscape: the loss on a 2-D plane through the weights, and the training trajectory.

Both run on the BP view of a model (docs/analyses.md): the default plane is spanned by the top
two Hessian eigenvectors, which only mean something for the true Hessian. The loss values
themselves need only forward passes, so any view with the same forward weights gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hwsim.models.analysis.hessian import (
    Batches,
    HessianOperator,
    LossFn,
    as_batch_list,
    get_flat_parameters,
    model_device,
    set_flat_parameters,
    top_eigenvalues,
    trainable_parameters,
)


@dataclass(frozen=True)
class SurfaceResult:
    """Loss on the plane ``w + α d₁ + β d₂`` around the weights ``w``.

    ``loss[i][j]`` is the dataset loss at ``alphas[i]``, ``betas[j]``; ``center_loss`` is the loss
    at ``w`` itself. ``directions`` is ``[2, n]`` (flat, in parameter order);
    ``direction_eigenvalues`` are the Hessian eigenvalues of the directions when they are the
    top eigenvectors, else ``None``.
    """

    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    loss: tuple[tuple[float, ...], ...]
    center_loss: float
    directions: Tensor
    direction_eigenvalues: tuple[float, ...] | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (without the directions)."""
        return {
            "alphas": list(self.alphas),
            "betas": list(self.betas),
            "loss": [list(row) for row in self.loss],
            "center_loss": self.center_loss,
            "direction_eigenvalues": (
                None if self.direction_eigenvalues is None else list(self.direction_eigenvalues)
            ),
        }


@dataclass(frozen=True)
class TrajectoryResult:
    """A training trajectory projected on its first two principal components.

    The snapshots minus the final weights form the rows of a matrix ``M``; ``components`` (``[2,
    n]``) are its top right singular vectors and ``coordinates[t]`` the projection of snapshot
    ``t`` (the final weights sit at the origin). ``explained_variance`` is the fraction of
    ``‖M‖²_F`` each component explains. ``path_loss[t]`` is the loss at the true weights of
    snapshot ``t`` (not at its projection). ``surface`` is the loss on the PCA plane around the
    final weights, when asked for.
    """

    coordinates: tuple[tuple[float, float], ...]
    explained_variance: tuple[float, float]
    components: Tensor
    path_loss: tuple[float, ...] | None
    surface: SurfaceResult | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (without the components)."""
        return {
            "coordinates": [list(c) for c in self.coordinates],
            "explained_variance": list(self.explained_variance),
            "path_loss": None if self.path_loss is None else list(self.path_loss),
            "surface": None if self.surface is None else self.surface.to_dict(),
        }


def dataset_loss(model: nn.Module, loss_fn: LossFn, batches: Batches) -> float:
    """Sample-weighted mean of a mean-reduced ``loss_fn`` over the batches (no gradient)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in as_batch_list(batches, model_device(model)):
            total += float(loss_fn(model(x), y)) * x.shape[0]
            count += x.shape[0]
    return total / count


def _grid(values: Sequence[float] | Tensor | None) -> tuple[float, ...]:
    if values is None:
        return tuple(float(v) for v in torch.linspace(-1.0, 1.0, 21, dtype=torch.float64))
    if isinstance(values, Tensor):
        return tuple(float(v) for v in values.reshape(-1))
    return tuple(float(v) for v in values)


def loss_surface(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    *,
    directions: Tensor | None = None,
    alphas: Sequence[float] | Tensor | None = None,
    betas: Sequence[float] | Tensor | None = None,
    hessian_batches: Batches | None = None,
    seed: int = 0,
) -> SurfaceResult:
    """The loss on a 2-D grid ``w + α d₁ + β d₂`` around the current weights ``w``.

    ``directions`` is ``[2, n]`` over the trainable parameters (flat, in parameter order); by
    default the unit top-2 Hessian eigenvectors, computed on ``hessian_batches`` (default: the
    same batches) with Lanczos seeded by ``seed``. ``alphas`` and ``betas`` default to 21 points
    on ``[-1, 1]`` (parameter-space distance along unit directions). The weights are put back
    bit-exactly afterwards, also when an error occurs.
    """
    batch_list = as_batch_list(batches, model_device(model))
    eigenvalues: tuple[float, ...] | None = None
    if directions is None:
        operator = HessianOperator(
            model, loss_fn, batch_list if hessian_batches is None else hessian_batches
        )
        top = top_eigenvalues(operator, k=2, seed=seed)
        directions, eigenvalues = top.eigenvectors, top.eigenvalues
    params = trainable_parameters(model)
    n = sum(p.numel() for p in params)
    if directions.shape != (2, n):
        raise ValueError(f"directions must have shape (2, {n}), got {tuple(directions.shape)}")
    alpha_values, beta_values = _grid(alphas), _grid(betas)
    saved = [p.detach().clone() for p in params]
    origin = get_flat_parameters(model)
    d1, d2 = directions.to(dtype=origin.dtype, device=origin.device)
    loss: list[tuple[float, ...]] = []
    try:
        center = dataset_loss(model, loss_fn, batch_list)
        for a in alpha_values:
            row = []
            for b in beta_values:
                # Always step from the saved origin, so errors don't accumulate over the grid.
                set_flat_parameters(model, origin + a * d1 + b * d2)
                row.append(dataset_loss(model, loss_fn, batch_list))
            loss.append(tuple(row))
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
    return SurfaceResult(
        alphas=alpha_values,
        betas=beta_values,
        loss=tuple(loss),
        center_loss=center,
        directions=directions.detach().clone(),
        direction_eigenvalues=eigenvalues,
    )


def trajectory_pca(
    snapshots: Sequence[Tensor],
    *,
    model: nn.Module | None = None,
    loss_fn: LossFn | None = None,
    batches: Batches | None = None,
    surface_points: int | None = None,
    margin: float = 0.2,
) -> TrajectoryResult:
    """Project flat weight snapshots (oldest first, the last one final) on their top-2 PCA plane.

    PCA is taken of the snapshots minus the *final* weights, as in Li et al. 2018 ("Visualizing
    the loss landscape"), via an SVD. With ``model``, ``loss_fn`` and ``batches``, the loss at
    each snapshot is evaluated (``path_loss``) and, with ``surface_points``, the loss on a
    ``surface_points × surface_points`` grid over the plane, covering the projected path plus a
    ``margin`` fraction on each side. The model's weights are restored afterwards.
    """
    if len(snapshots) < 2:
        raise ValueError("need at least two snapshots")
    stacked = torch.stack([s.detach().reshape(-1).to(torch.float64) for s in snapshots])
    final = stacked[-1]
    deltas = stacked - final
    _, singular, vh = torch.linalg.svd(deltas, full_matrices=False)
    energy = float((singular**2).sum())
    components = vh[:2]
    if components.shape[0] < 2:  # n == 1: no second direction exists
        components = torch.cat([components, torch.zeros_like(components)])
    ratios = [float(s**2) / energy if energy > 0 else 0.0 for s in singular[:2]]
    ratios += [0.0] * (2 - len(ratios))
    coords = deltas @ components.T
    path_loss: tuple[float, ...] | None = None
    surface: SurfaceResult | None = None
    if model is not None and loss_fn is not None and batches is not None:
        batch_list = as_batch_list(batches, model_device(model))
        params = trainable_parameters(model)
        saved = [p.detach().clone() for p in params]
        try:
            values = []
            for s in snapshots:
                set_flat_parameters(model, s.reshape(-1).to(dtype=params[0].dtype))
                values.append(dataset_loss(model, loss_fn, batch_list))
            path_loss = tuple(values)
            if surface_points is not None:
                set_flat_parameters(model, snapshots[-1].reshape(-1).to(dtype=params[0].dtype))
                axes = []
                for c in coords.T:
                    lo, hi = float(c.min()), float(c.max())
                    pad = margin * (hi - lo) if hi > lo else 1.0
                    axes.append(torch.linspace(lo - pad, hi + pad, surface_points))
                surface = loss_surface(
                    model,
                    loss_fn,
                    batch_list,
                    directions=components.to(params[0].dtype),
                    alphas=axes[0],
                    betas=axes[1],
                )
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
    return TrajectoryResult(
        coordinates=tuple((float(a), float(b)) for a, b in coords),
        explained_variance=(ratios[0], ratios[1]),
        components=components,
        path_loss=path_loss,
        surface=surface,
    )
