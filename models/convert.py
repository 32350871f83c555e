"""Turn an ordinary model into one trained by a rule, and back into a BP view for analyses."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Iterator

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.layer_names import stable_layer_names
from hwsim.core.rules import Rule, parse_rule
from hwsim.models.feedback import (
    FLOAT_BITS,
    DirectFeedback,
    angle_deg,
    draw_direct_feedback,
    draw_feedback,
    feedback_sigma,
)
from hwsim.models.layers import FEEDBACK_CLASS, FeedbackLayer

#: Layer types that carry weights the rules apply to, in float and quantized form.
WEIGHT_LAYER_TYPES = (nn.Linear, nn.Conv2d, QuantLinear, QuantConv2d)


def _named_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``model.named_modules()`` without descending into weight layers and brevitas' modules.

    Neither holds a layer the rules apply to, and a quantized network has a dozen brevitas
    proxy modules under every layer: walking them made :func:`feedback_step` (once per
    optimizer step) cost 5% of a training step. Names and order are ``named_modules()``'.
    """
    seen: set[int] = set()

    def walk(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
        if id(module) in seen:
            return
        seen.add(id(module))
        yield prefix, module
        if isinstance(module, WEIGHT_LAYER_TYPES) or type(module).__module__.startswith(
            "brevitas."
        ):
            return
        for name, child in module._modules.items():
            if child is not None:
                yield from walk(child, f"{prefix}.{name}" if prefix else name)

    return walk(model, "")


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv2d layer (float or brevitas), in module order."""
    return [(n, m) for n, m in _named_layers(model) if isinstance(m, WEIGHT_LAYER_TYPES)]


def layer_names(model: nn.Module) -> dict[nn.Module, str]:
    """The name of every weight layer of ``model``, in forward order: ``{module: name}``.

    Linear layers (float or brevitas) are ``fc1, fc2, …``, convolutions ``conv1, conv2, …``,
    each kind numbered from 1 (:func:`hwsim.core.layer_names.stable_layer_names`). This is the
    one naming of layers: ``workload.json``, ``metrics.jsonl``/``metrics.csv``, the analyses and
    the simulator's model specs all use it. Forward order is module registration order (what
    :func:`weight_layers` lists), which is the order the forward pass runs them in for every
    network :mod:`hwsim.models.networks` builds (``nn.Sequential``); a model of your own whose
    ``forward`` calls its layers in another order is named in registration order.
    """
    layers = [m for _, m in weight_layers(model)]
    kinds = ["conv2d" if isinstance(m, nn.Conv2d | QuantConv2d) else "linear" for m in layers]
    return dict(zip(layers, stable_layer_names(kinds), strict=True))


def feedback_layers(model: nn.Module) -> list[tuple[str, FeedbackLayer]]:
    """``(name, module)`` of every layer trained by a feedback rule (every rule but BP)."""
    return [(n, m) for n, m in _named_layers(model) if isinstance(m, FeedbackLayer)]


def observe_layers(
    model: nn.Module,
    layers: list[tuple[str, nn.Module]],
    inputs: Tensor,
    observe: Callable[[str, Tensor, Tensor], None],
) -> None:
    """Call ``observe(name, layer input, layer output)`` (plain tensors) for each of ``layers``
    during one no-grad forward of ``inputs`` in eval mode (no statistics or random state is
    touched; the model's mode is restored)."""

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: object) -> None:
            x = args[0].value if hasattr(args[0], "value") else args[0]
            y = output.value if hasattr(output, "value") else output
            observe(name, x, y)  # type: ignore[arg-type]

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def _input_shapes(
    model: nn.Module, layers: list[tuple[str, nn.Module]], example_input: Tensor
) -> dict[str, tuple[list[int], list[int]]]:
    """``{name: (input shape, output shape)}`` per sample of each layer, from one no-grad forward
    of ``example_input`` (:func:`observe_layers`)."""
    seen: dict[str, tuple[list[int], list[int]]] = {}

    def shapes(name: str, x: Tensor, y: Tensor) -> None:
        seen[name] = (list(x.shape[1:]), list(y.shape[1:]))

    observe_layers(model, layers, example_input, shapes)
    missing = [n for n, _ in layers if n not in seen]
    if missing:
        raise InputError(f"example_input: layers {missing} did not run in the forward pass")
    return seen


def _called(model: nn.Module, path: str, layer: nn.Module) -> str:
    """How an error names a layer: its name (:func:`layer_names`) and its module path."""
    return f"{layer_names(model)[layer]} (module {path!r})"


def _direct_sizes(
    model: nn.Module, layers: list[tuple[str, nn.Module]], example_input: Tensor | None
) -> tuple[int, list[int]]:
    """DFA's ``n_out`` and, per layer below the output layer, its input elements per sample."""
    top_name, top = layers[-1]
    top_called = _called(model, top_name, top)
    if not isinstance(top, nn.Linear | QuantLinear):
        raise InputError(
            f"DFA: the last weight layer {top_called} is a {type(top).__name__}: the output layer "
            "must be Linear with a 2-D output (batch, n_out)"
        )
    n_out = top.out_features
    shapes = _input_shapes(model, layers, example_input) if example_input is not None else None
    if shapes is not None and len(shapes[top_name][1]) != 1:
        raise InputError(
            f"DFA: the output layer {top_called} must give a 2-D output (batch, n_out), got "
            f"shape [batch, {', '.join(map(str, shapes[top_name][1]))}] for example_input"
        )
    sizes = []
    for name, layer in layers[:-1]:
        if shapes is not None:
            sizes.append(math.prod(shapes[name][0]))
        elif isinstance(layer, nn.Linear | QuantLinear):
            sizes.append(layer.in_features)
        else:
            raise InputError(
                f"DFA: layer {_called(model, name, layer)} is a convolution, so the size of its "
                "input (C·H·W) is unknown at convert time: pass example_input= (a batch of "
                "inputs) to convert"
            )
    return n_out, sizes


def convert(
    model: nn.Module,
    rule: str | Rule,
    *,
    seed: int = 0,
    feedback_bits: int = FLOAT_BITS,
    backward_gain: float | None = None,
    example_input: Tensor | None = None,
) -> nn.Module:
    """Make ``model`` train by ``rule``, in place, and return it.

    BP leaves the model as it is (autograd is BP). Every other rule turns every
    ``Linear``/``Conv2d`` (float or brevitas) into its feedback twin and draws what the rule
    stores from one ``torch.Generator`` seeded with ``seed``, layer by layer in registration
    order, so the seed reproduces it (docs/learning.md;
    :func:`hwsim.models.feedback.draw_feedback`).

    ``example_input`` (a batch the model accepts) is used by DFA only, to learn the input size
    of each layer: it is needed when a layer below the output layer is a convolution. KP needs
    :func:`feedback_step` around every optimizer step.
    """
    rule = parse_rule(rule) if isinstance(rule, str) else rule
    if not rule.uses_feedback_weights:
        return model
    layers = weight_layers(model)
    if not layers:
        raise InputError("model has no Linear or Conv2d layer to train with a feedback rule")
    for name, layer in layers:
        if isinstance(layer, FeedbackLayer):
            raise InputError(
                f"layer {_called(model, name, layer)} is already trained by rule "
                f"{layer.rule.spec!r}"
            )
        if FEEDBACK_CLASS.get(type(layer)) is None:
            raise InputError(
                f"layer {_called(model, name, layer)} is a {type(layer).__name__}: only "
                "nn.Linear, nn.Conv2d, "
                "brevitas QuantLinear and QuantConv2d (not subclasses) can be converted"
            )
        if isinstance(layer, nn.Conv2d | QuantConv2d) and (
            isinstance(layer.padding, str) or layer.padding_mode != "zeros"
        ):
            raise InputError(
                f"layer {_called(model, name, layer)}: only numeric zero padding is supported "
                "for feedback convolutions"
            )
    direct = DirectFeedback() if rule.direct else None
    if direct is not None:
        n_out, sizes = _direct_sizes(model, layers, example_input)
    generator = torch.Generator().manual_seed(seed)
    for index, (_, layer) in enumerate(layers):
        top = index == len(layers) - 1
        rng_state = None
        sigma = 0.0
        if rule.kind == "usf":
            feedback = None
        elif direct is not None and not top:
            feedback = draw_direct_feedback(
                n_out,
                sizes[index],
                layer.weight,
                generator=generator,
                backward_gain=backward_gain,
                feedback_bits=feedback_bits,
            )
        else:
            feedback = draw_feedback(
                layer.weight,
                rule,
                generator=generator,
                backward_gain=backward_gain,
                feedback_bits=feedback_bits,
            )
        if rule.redraws_feedback:
            # Each layer's redraws come from its own stream, seeded from the convert stream.
            sigma = feedback_sigma(layer.weight, backward_gain)
            layer_seed = int(torch.randint(2**62, (1,), generator=generator))
            rng_state = torch.Generator().manual_seed(layer_seed).get_state()
        layer.__class__ = FEEDBACK_CLASS[type(layer)]  # the twin only overrides the product
        layer.attach_feedback(  # type: ignore[attr-defined]
            rule,
            feedback,
            feedback_bits,
            direct=direct,
            direct_top=direct is not None and top,
            rng_state=rng_state,
            sigma=sigma,
        )
    return model


@contextlib.contextmanager
def feedback_step(model: nn.Module, lr: float) -> Iterator[None]:
    """Wrap every optimizer step in this: ``with feedback_step(model, lr): optimizer.step()``.

    Kolen–Pollack layers remember ``W`` before the step and, after it, give ``B`` the same
    update ``s = W_after − W_before`` and apply the decay ``λ`` (the rule's ``decay``) at the
    learning rate ``lr``: ``W ← W_before + s − lr·λ·W_before``, ``B ← B + s − lr·λ·B``
    (:meth:`FeedbackLayer.kolen_pollack_update`). Other rules do nothing here, so a training
    loop may always use it; a loop without it trains KP's ``B`` never (it stays FA). An
    exception inside the block skips the update.
    """
    kp = [m for _, m in feedback_layers(model) if m.rule.updates_feedback]
    before = [m.weight.detach().clone() for m in kp]
    yield
    for m, w in zip(kp, before, strict=True):
        m.kolen_pollack_update(w, lr)


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


def _direct_angle(layers: list[tuple[str, nn.Module]], index: int) -> float:
    """DFA, layer ``index`` below the output layer: angle between ``D_l`` and the linear
    backward path ``W_top ⋯ W_l`` (NaN when a convolution is on that path)."""
    path = [m for _, m in layers[index:]]
    if any(not isinstance(m, nn.Linear | QuantLinear) for m in path):
        return float("nan")
    product = path[-1].weight.detach().double()
    for m in reversed(path[:-1]):
        w = m.weight.detach().double()
        if product.shape[1] != w.shape[0]:
            return float("nan")
        product = product @ w
    feedback = layers[index][1].feedback_weight
    if feedback is None or feedback.shape != product.shape:
        return float("nan")
    return angle_deg(feedback, product)


def alignment_angles(model: nn.Module) -> dict[str, float]:
    """Angle in degrees per weight layer (keyed by :func:`layer_names`) between the forward
    weights and the feedback.

    ``angle(W, B)`` with the current ``B`` (0 for BP, which uses ``W``; uSF/frSF/brSF build ``B``
    from the current ``W``). DFA: the output layer's ``angle(W, B)``; below it, the angle between
    ``D_l`` and ``W_top ⋯ W_l`` (what ``D_l`` would have to be for DFA to be BP in a linear
    network), NaN where a convolution is on that path (docs/learning.md).
    """
    layers = weight_layers(model)
    names = layer_names(model)
    angles = {}
    for index, (_, m) in enumerate(layers):
        name = names[m]
        if not isinstance(m, FeedbackLayer):
            angles[name] = 0.0
        elif m.direct is not None and not m.direct_top:
            angles[name] = _direct_angle(layers, index)
        else:
            feedback = m.feedback_matrix()
            angles[name] = float("nan") if feedback is None else angle_deg(m.weight, feedback)
    return angles


def update_angles(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> dict[str, float]:
    """Angle in degrees between the rule's weight update direction and the true gradient, per
    weight layer (keyed by :func:`layer_names`).

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
    names = layer_names(model)
    return {
        names[m]: angle_deg(r, t)
        for (_, m), r, t in zip(layers, rule_grads, true_grads, strict=True)
    }
