"""Accuracy of a classifier on tensors, in batches (shared by the robustness analyses)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def predict(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Predicted classes: ``argmax`` of the model's outputs over dim 1, computed in batches."""
    with torch.no_grad():
        return torch.cat(
            [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
        )


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Fraction of samples whose predicted class equals ``y``."""
    if x.shape[0] == 0:
        raise ValueError("no samples")
    return float((predict(model, x, batch_size=batch_size) == y).double().mean())
