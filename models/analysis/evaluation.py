"""Accuracy of a classifier on tensors, in batches (shared by the robustness analyses).

Both run where the model lives: each batch is moved to the model's device, so inputs may stay
on the CPU (or anywhere else).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hwsim.models.analysis.hessian import model_device


def predict(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Predicted classes: ``argmax`` of the model's outputs over dim 1, computed in batches on
    the model's device (returned there)."""
    device = model_device(model)
    with torch.no_grad():
        return torch.cat(
            [
                model(x[i : i + batch_size].to(device)).argmax(dim=1)
                for i in range(0, x.shape[0], batch_size)
            ]
        )


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Fraction of samples whose predicted class equals ``y``."""
    if x.shape[0] == 0:
        raise ValueError("no samples")
    predicted = predict(model, x, batch_size=batch_size)
    return float((predicted == y.to(predicted.device)).double().mean())
