"""Turn an ordinary model into one trained by a rule, and back into a BP view for analyses."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.rules import Rule, parse_rule
from models.feedback import FLOAT_BITS, angle_deg, draw_feedback
from models.layers import FEEDBACK_CLASS, FeedbackLayer

#: Layer types that carry weights the rules apply to, in float and quantized form.
WEIGHT_LAYER_TYPES = (nn.Linear, nn.Conv2d, QuantLinear, QuantConv2d)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv2d layer (float or brevitas), in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYER_TYPES)]


def feedback_layers(model: nn.Module) -> list[tuple[str, FeedbackLayer]]:
    """``(name, module)`` of every layer that sends errors through a fixed ``B``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FeedbackLayer)]


def convert(
    model: nn.Module,
    rule: str | Rule,
    *,
    seed: int = 0,
    feedback_bits: int = FLOAT_BITS,
    backward_gain: float | None = None,
) -> nn.Module:
    """Make ``model`` train by ``rule``, in place, and return it.

    BP leaves the model as it is (autograd is BP). FA and IFA turn every ``Linear``/``Conv2d``
    (float or brevitas) into its fixed-feedback twin and draw ``B`` for it from one
    ``torch.Generator`` seeded with ``seed``, layer by layer in registration order, so the seed
    reproduces every ``B``. See :func:`models.feedback.draw_feedback` for the distributions.
    """
    rule = parse_rule(rule) if isinstance(rule, str) else rule
    if not rule.uses_feedback_weights:
        return model
    if rule.kind not in ("fa", "ifa"):
        raise InputError(f"rule {rule.spec!r} cannot be trained yet")
    layers = weight_layers(model)
    if not layers:
        raise InputError("model has no Linear or Conv2d layer to train with a feedback rule")
    generator = torch.Generator().manual_seed(seed)
    for name, layer in layers:
        if isinstance(layer, FeedbackLayer):
            raise InputError(f"layer {name!r} is already trained by rule {layer.rule.spec!r}")
        cls = FEEDBACK_CLASS.get(type(layer))
        if cls is None:
            raise InputError(
                f"layer {name!r} is a {type(layer).__name__}: only nn.Linear, nn.Conv2d, "
                "brevitas QuantLinear and QuantConv2d (not subclasses) can be converted"
            )
        if isinstance(layer, nn.Conv2d | QuantConv2d) and (
            isinstance(layer.padding, str) or layer.padding_mode != "zeros"
        ):
            raise InputError(
                f"layer {name!r}: only numeric zero padding is supported for feedback convolutions"
            )
        feedback = draw_feedback(
            layer.weight,
            rule,
            generator=generator,
            backward_gain=backward_gain,
            feedback_bits=feedback_bits,
        )
        layer.__class__ = cls  # the twin only overrides the product: swapping keeps all state
        layer.attach_feedback(rule, feedback, feedback_bits)
    return model


@contextlib.contextmanager
def true_gradients(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model`` back-propagates true gradients (a BP view, same weights)."""
    layers = [m for _, m in feedback_layers(model)]
    previous = [m.use_true_gradient for m in layers]
    for m in layers:
        m.use_true_gradient = True
    try:
        yield model
    finally:
        for m, p in zip(layers, previous, strict=True):
            m.use_true_gradient = p


def bp_view(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with the same forward weights whose backward is the true gradient.

    Autograd through an FA layer gives the FA update, not the gradient: Hessians, loss
    landscapes and white-box attacks must run on this view instead.
    """
    view = copy.deepcopy(model)
    for _, m in feedback_layers(view):
        m.use_true_gradient = True
    return view


def alignment_angles(model: nn.Module) -> dict[str, float]:
    """Angle in degrees between ``W`` and ``B`` per weight layer (0 for BP, which uses ``W``)."""
    return {
        name: angle_deg(m.weight, m.feedback_weight) if isinstance(m, FeedbackLayer) else 0.0
        for name, m in weight_layers(model)
    }


def update_angles(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> dict[str, float]:
    """Angle in degrees between the rule's weight update direction and the true gradient.

    Both are summed over ``batches``; the rule's direction is its gradient estimate (what SGD
    would apply; Adam rescales it further). BP's is 0 by definition. Leaves ``.grad`` untouched.
    """
    layers = weight_layers(model)
    params = list(model.parameters())
    saved = [p.grad for p in params]
    batches = list(batches)

    def summed_grads() -> list[Tensor]:
        for p in params:
            p.grad = None
        for x, y in batches:
            loss_fn(model(x), y).backward()
        return [m.weight.grad.detach().clone() for _, m in layers]

    was_training = model.training
    model.eval()  # no batch-statistics drift between the two passes
    try:
        rule_grads = summed_grads()
        with true_gradients(model):
            true_grads = summed_grads()
    finally:
        model.train(was_training)
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    return {
        name: angle_deg(r, t)
        for (name, _), r, t in zip(layers, rule_grads, true_grads, strict=True)
    }
