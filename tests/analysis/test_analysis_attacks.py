"""FGSM and PGD against the closed form of a linear two-class softmax model.

For logits ``z = W x + b`` with two classes, the cross-entropy's input gradient is
``(p₁ − [y = 1])·u`` with ``u = w₁ − w₀``: its sign is ``s = (1 − 2y)·sign(u)`` whatever ``x`` is.
So FGSM gives ``clip(x + ε s)``; PGD, whose every step has the same sign, ends at the same point
once its steps can cross the ball; and a sample survives (without clipping) exactly when its
margin ``(2y − 1)(u·x + c)`` exceeds ``ε ‖u‖₁``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwsim.models.analysis import (
    adversarial_accuracy,
    fgsm,
    input_gradient_fn,
    pgd,
    transfer_accuracy,
)


def linear_case(n: int = 200, d: int = 12):
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(d, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, d, generator=gen, dtype=torch.float64))
        model.bias.copy_(torch.randn(2, generator=gen, dtype=torch.float64) * 0.1)
    # Inputs inside [0.25, 0.75] so that clipping to [0, 1] is inactive for eps ≤ 0.25.
    x = 0.25 + 0.5 * torch.rand(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=gen)
    return model, x, y


def expected_sign(model: nn.Linear, y: torch.Tensor) -> torch.Tensor:
    u = (model.weight[1] - model.weight[0]).detach()
    return (1 - 2 * y).double()[:, None] * u.sign()[None, :]


def margins(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    u = (model.weight[1] - model.weight[0]).detach()
    c = float((model.bias[1] - model.bias[0]).detach())
    return (2 * y - 1).double() * (x @ u + c)


def test_input_gradient_is_the_true_gradient():
    model, x, y = linear_case(n=5)
    gradient = input_gradient_fn(model)(x, y)
    p = torch.softmax(model(x), dim=1).detach()
    expected = (p - F.one_hot(y, 2).double()) @ model.weight.detach()
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-14)
    assert model.weight.grad is None


def test_fgsm_closed_form():
    model, x, y = linear_case()
    grad_fn = input_gradient_fn(model)
    eps = 0.1
    assert torch.equal(fgsm(x, y, grad_fn, eps=eps), x + eps * expected_sign(model, y))
    # With clipping active: points pushed past the valid range stop at its edge.
    big = fgsm(x, y, grad_fn, eps=0.5)
    assert torch.equal(big, (x + 0.5 * expected_sign(model, y)).clamp(0, 1))


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_closed_form(random_start):
    model, x, y = linear_case()
    eps = 0.2
    # 10 steps of 0.05 cover 2·eps, enough to reach the boundary from anywhere in the ball.
    adversarial = pgd(
        x,
        y,
        input_gradient_fn(model),
        eps=eps,
        steps=10,
        step_size=0.05,
        random_start=random_start,
        seed=3,
    )
    assert torch.equal(adversarial, x + eps * expected_sign(model, y))


def test_pgd_stays_in_ball_and_range_and_is_seeded():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(32, 10, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    grad_fn = input_gradient_fn(model)
    first = pgd(x, y, grad_fn, eps=0.1, steps=3, seed=5)
    assert float((first - x).abs().max()) <= 0.1 + 1e-6
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, pgd(x, y, grad_fn, eps=0.1, steps=3, seed=5))
    assert not torch.equal(first, pgd(x, y, grad_fn, eps=0.1, steps=3, seed=6))
    with torch.no_grad():
        assert float(F.cross_entropy(model(first), y)) > float(F.cross_entropy(model(x), y))


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarial_accuracy_closed_form(attack):
    model, x, y = linear_case()
    u_l1 = float((model.weight[1] - model.weight[0]).detach().abs().sum())
    eps_list = [0.0, 0.01, 0.03, 0.1]
    results = adversarial_accuracy(
        model, x, y, eps_list=eps_list, attack=attack, steps=20, clip=None, batch_size=64
    )
    margin = margins(model, x, y)
    clean = float((margin > 0).double().mean())
    assert [r.eps for r in results] == eps_list
    for r in results:
        assert r.clean_accuracy == clean
        assert r.accuracy == float((margin > r.eps * u_l1).double().mean())
        assert r.attack == attack and r.samples == 200 and r.gradient_source == "model"
    assert results[0].accuracy == clean
    assert results[-1].accuracy < clean


def test_transfer_attack_closed_form():
    model, x, y = linear_case()
    u_l1 = float((model.weight[1] - model.weight[0]).detach().abs().sum())
    margin = margins(model, x, y)
    # Surrogate = target: a transfer attack is the white-box attack.
    same = transfer_accuracy(model, model, x, y, eps_list=[0.05], attack="fgsm", clip=None)
    assert same[0].accuracy == float((margin > 0.05 * u_l1).double().mean())
    assert same[0].gradient_source == "transfer"
    # A surrogate with the classes swapped pushes every sample *away* from the boundary.
    swapped = nn.Linear(12, 2).double()
    with torch.no_grad():
        swapped.weight.copy_(model.weight.flip(0))
        swapped.bias.copy_(model.bias.flip(0))
    helped = transfer_accuracy(swapped, model, x, y, eps_list=[0.05], attack="fgsm", clip=None)
    assert helped[0].accuracy == float((margin > -0.05 * u_l1).double().mean())
    assert helped[0].accuracy > helped[0].clean_accuracy
