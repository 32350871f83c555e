"""White-box and black-box adversarial attacks (L∞ FGSM and PGD) that take a gradient source.

An attack only needs ``grad_fn(x, y) -> dL/dx``. Where that gradient comes from is the point of
the robustness analysis (docs/analyses.md): autograd through the *BP view* of a model gives the
true input gradient; autograd through the model *as trained* with feedback alignment sends the
error down through the feedback matrices ``B`` (the model's own feedback), which is not the
gradient; crafting on another model (a *surrogate*) and evaluating on the target is a black-box
transfer attack. Reporting all three keeps gradient masking from passing as robustness: a model
that only looks robust because its own backward pass is not its gradient falls to the other two.

Definitions, with ``Π`` the projection on the L∞ ball ``‖δ‖∞ ≤ ε`` around ``x`` and ``clip`` the
clipping to the valid input range:

- FGSM (Goodfellow et al. 2015): ``x' = clip(x + ε·sign(∇ₓL(x, y)))``.
- PGD (Madry et al. 2018): ``x₀ = clip(x + U(−ε, ε))`` (random start, seeded) or ``x``;
  ``x_{t+1} = clip(Π(x_t + α·sign(∇ₓL(x_t, y))))`` for ``steps`` steps of size ``α``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwsim.models.analysis.evaluation import accuracy
from hwsim.models.analysis.hessian import model_device

GradFn = Callable[[Tensor, Tensor], Tensor]
"""``grad_fn(x, y)`` returning ``dL/dx`` with the shape of ``x``."""


def _summed_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    # A summed loss makes each sample's input gradient independent of the batch it sits in.
    return F.cross_entropy(outputs, targets, reduction="sum")


def input_gradient_fn(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
) -> GradFn:
    """A gradient source: ``dL/dx`` by autograd through ``model`` exactly as given.

    Give the BP view of a model for the true gradient, or the model as trained for its own
    feedback (an FA/IFA model's backward uses ``B``). ``loss_fn(outputs, y)`` defaults to the
    summed cross-entropy. Parameter gradients (``.grad``) are left untouched.
    """
    loss = loss_fn if loss_fn is not None else _summed_cross_entropy

    def grad_fn(x: Tensor, y: Tensor) -> Tensor:
        # Computed on the model's device, returned on the device of ``x``.
        device = model_device(model)
        inputs = x.detach().to(device).clone().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(loss(model(inputs), y.to(device)), inputs)
        return gradient.detach().to(x.device)

    return grad_fn


def _clip(x: Tensor, clip: tuple[float, float] | None) -> Tensor:
    return x if clip is None else x.clamp(clip[0], clip[1])


def fgsm(
    x: Tensor, y: Tensor, grad_fn: GradFn, *, eps: float, clip: tuple[float, float] | None = (0, 1)
) -> Tensor:
    """Fast gradient sign method: ``clip(x + eps·sign(grad_fn(x, y)))``."""
    return _clip(x + eps * grad_fn(x, y).sign(), clip).detach()


def pgd(
    x: Tensor,
    y: Tensor,
    grad_fn: GradFn,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    clip: tuple[float, float] | None = (0, 1),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent on the loss (ascent), L∞ ball of radius ``eps``.

    ``step_size`` defaults to ``2.5·eps/steps`` (Madry et al.). The random start is uniform in
    the ball, drawn from ``generator`` if given, else from a CPU generator seeded with ``seed``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    alpha = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    if random_start:
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        adversarial = _clip(x + (2 * noise - 1) * eps, clip)
    else:
        adversarial = x.clone()
    for _ in range(steps):
        stepped = adversarial + alpha * grad_fn(adversarial, y).sign()
        adversarial = _clip(x + (stepped - x).clamp(-eps, eps), clip)
    return adversarial.detach()


@dataclass(frozen=True)
class AdversarialResult:
    """Accuracy under one attack at one ``eps``.

    ``gradient_source`` names where the attack's gradient came from (e.g. ``"true"``,
    ``"feedback"``, ``"transfer"``). For FGSM ``steps`` is 1 and ``step_size`` equals ``eps``.
    """

    attack: str
    gradient_source: str
    eps: float
    accuracy: float
    clean_accuracy: float
    samples: int
    steps: int
    step_size: float
    random_start: bool
    seed: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "attack": self.attack,
            "gradient_source": self.gradient_source,
            "eps": self.eps,
            "accuracy": self.accuracy,
            "clean_accuracy": self.clean_accuracy,
            "samples": self.samples,
            "steps": self.steps,
            "step_size": self.step_size,
            "random_start": self.random_start,
            "seed": self.seed,
        }


def adversarial_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps_list: Sequence[float],
    attack: Literal["fgsm", "pgd"] = "pgd",
    grad_fn: GradFn | None = None,
    gradient_source: str = "model",
    steps: int = 10,
    relative_step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 1000,
) -> tuple[AdversarialResult, ...]:
    """Accuracy of ``model`` on adversarial examples crafted with ``grad_fn``, one result per eps.

    ``grad_fn`` defaults to autograd through ``model`` itself (:func:`input_gradient_fn`), i.e.
    the true gradient when ``model`` is a BP view; pass another source (the model's own feedback,
    a surrogate's gradient) and name it in ``gradient_source``. PGD's step size is
    ``relative_step_size·eps`` (default ``2.5/steps``). Examples are crafted in batches of
    ``batch_size`` and the random starts come from one generator seeded with ``seed``.
    """
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    source = grad_fn if grad_fn is not None else input_gradient_fn(model)
    # Crafted and evaluated on the model's device; the random starts are drawn on the CPU.
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    clean = accuracy(model, x, y, batch_size=batch_size)
    relative = 2.5 / steps if relative_step_size is None else relative_step_size
    results = []
    for eps in eps_list:
        generator = torch.Generator().manual_seed(seed)
        pieces = []
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if attack == "fgsm":
                pieces.append(fgsm(xb, yb, source, eps=eps, clip=clip))
            else:
                pieces.append(
                    pgd(
                        xb,
                        yb,
                        source,
                        eps=eps,
                        steps=steps,
                        step_size=relative * eps,
                        random_start=random_start,
                        clip=clip,
                        generator=generator,
                    )
                )
        adversarial = torch.cat(pieces)
        is_pgd = attack == "pgd"
        results.append(
            AdversarialResult(
                attack=attack,
                gradient_source=gradient_source,
                eps=float(eps),
                accuracy=accuracy(model, adversarial, y, batch_size=batch_size),
                clean_accuracy=clean,
                samples=int(x.shape[0]),
                steps=steps if is_pgd else 1,
                step_size=float(relative * eps) if is_pgd else float(eps),
                random_start=random_start and is_pgd,
                seed=seed,
            )
        )
    return tuple(results)


def transfer_accuracy(
    surrogate: nn.Module,
    target: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps_list: Sequence[float],
    attack: Literal["fgsm", "pgd"] = "pgd",
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    steps: int = 10,
    relative_step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 1000,
) -> tuple[AdversarialResult, ...]:
    """Black-box transfer attack: craft on ``surrogate`` (its true gradient, by autograd),
    evaluate ``target``. Results are labelled ``gradient_source="transfer"``."""
    return adversarial_accuracy(
        target,
        x,
        y,
        eps_list=eps_list,
        attack=attack,
        grad_fn=input_gradient_fn(surrogate, loss_fn),
        gradient_source="transfer",
        steps=steps,
        relative_step_size=relative_step_size,
        random_start=random_start,
        seed=seed,
        clip=clip,
        batch_size=batch_size,
    )
