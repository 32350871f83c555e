"""Ground truth for the learning rules: FA with B = W is BP, exactly."""

import copy
import math

import pytest
import torch
from brevitas.nn import QuantLinear
from brevitas.quant import Int8WeightPerTensorFloat
from torch import nn

from hwsim.core.errors import InputError
from hwsim.models import (
    FeedbackLayer,
    alignment_angles,
    bp_view,
    build_network,
    convert,
    feedback_layers,
    quantize_feedback,
    true_gradients,
    update_angles,
    weight_layers,
)
from hwsim.models.quant import WeightQuantSTE


def _nets(quantized: bool, conv: bool) -> nn.Module:
    bits = 8 if quantized else 32
    if conv:
        return build_network("cnn", (3, 8, 8), 5, width=4, weight_bits=bits, act_bits=bits, seed=3)
    return build_network(
        "mlp", (12,), 5, depth=3, width=16, weight_bits=bits, act_bits=bits, seed=3
    )


def _batch(conv: bool):
    g = torch.Generator().manual_seed(7)
    x = torch.rand((6, 3, 8, 8) if conv else (6, 12), generator=g)
    return x, torch.randint(0, 5, (6,), generator=g)


def _grads(model: nn.Module, x, y) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    grads["input"] = x.grad.clone()
    return grads


def _set_feedback_to_forward(model: nn.Module) -> None:
    for _, layer in feedback_layers(model):
        # The product uses the quantized weight, so B = W means B = the quantized weight.
        w = layer.quant_weight().value if hasattr(layer, "quant_weight") else layer.weight
        layer.feedback_weight.copy_(w.detach())


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
@pytest.mark.parametrize("rule", ["fa", "ifa:60"])
def test_feedback_equal_to_forward_weights_is_exactly_bp(quantized, conv, rule):
    bp_model = _nets(quantized, conv)
    fa_model = convert(copy.deepcopy(bp_model), rule, seed=1)
    _set_feedback_to_forward(fa_model)
    x, y = _batch(conv)
    bp, fa = _grads(bp_model, x, y), _grads(fa_model, x, y)
    assert bp.keys() == fa.keys()
    for name in bp:
        assert torch.equal(bp[name], fa[name]), name


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_random_feedback_last_layer_gets_bp_gradient_hidden_layers_do_not(quantized, conv):
    bp_model = _nets(quantized, conv)
    fa_model = convert(copy.deepcopy(bp_model), "fa", seed=1)
    x, y = _batch(conv)
    bp, fa = _grads(bp_model, x, y), _grads(fa_model, x, y)
    names = [n for n, _ in weight_layers(bp_model)]
    last = names[-1]
    assert torch.equal(bp[f"{last}.weight"], fa[f"{last}.weight"])
    assert torch.equal(bp[f"{last}.bias"], fa[f"{last}.bias"])
    for hidden in names[:-1]:
        assert not torch.allclose(bp[f"{hidden}.weight"], fa[f"{hidden}.weight"], atol=1e-6)
    assert not torch.allclose(bp["input"], fa["input"], atol=1e-6)


def test_bp_view_and_true_gradients_give_bp_gradients_on_same_weights():
    bp_model = _nets(False, False)
    fa_model = convert(copy.deepcopy(bp_model), "fa", seed=1)
    x, y = _batch(False)
    bp = _grads(bp_model, x, y)
    view_grads = _grads(bp_view(fa_model), x, y)
    with true_gradients(fa_model):
        ctx_grads = _grads(fa_model, x, y)
    assert all(torch.equal(bp[k], view_grads[k]) and torch.equal(bp[k], ctx_grads[k]) for k in bp)
    assert not any(m.use_true_gradient for _, m in feedback_layers(fa_model))  # restored


def test_ifa_starts_at_zero_degrees_and_soft_ifa_at_its_angle_exactly():
    base = build_network("mlp", (64,), 10, depth=4, width=64, seed=0)
    assert max(alignment_angles(convert(copy.deepcopy(base), "ifa")).values()) < 1e-3
    for theta in (10.0, 45.0, 90.0, 135.0, 180.0):
        angles = alignment_angles(convert(copy.deepcopy(base), f"ifa:{theta}", seed=2))
        assert all(abs(a - theta) < 1e-3 for a in angles.values()), (theta, angles)
    fa = alignment_angles(convert(copy.deepcopy(base), "fa", seed=2))
    assert all(80 < a < 100 for a in fa.values()), fa
    assert set(alignment_angles(base).values()) == {0.0}  # BP reads W itself


def test_ifa_copies_forward_weights_and_soft_ifa_keeps_their_norm():
    base = build_network("mlp", (20,), 5, depth=3, width=16, seed=4)
    ifa = convert(copy.deepcopy(base), "ifa")
    for (_, w_layer), (_, f_layer) in zip(weight_layers(base), feedback_layers(ifa), strict=True):
        assert torch.equal(f_layer.feedback_weight, w_layer.weight.detach())
    soft = convert(copy.deepcopy(base), "ifa:30", seed=5)
    for (_, w_layer), (_, f_layer) in zip(weight_layers(base), feedback_layers(soft), strict=True):
        assert torch.isclose(f_layer.feedback_weight.norm(), w_layer.weight.norm(), rtol=1e-5)


def test_backward_gain_sets_feedback_scale():
    base = build_network("mlp", (400,), 5, depth=2, width=300, seed=0)
    fa = convert(copy.deepcopy(base), "fa", seed=1, backward_gain=1.0)
    b = feedback_layers(fa)[0][1].feedback_weight
    assert abs(float(b.std()) - 1.0 / math.sqrt(400)) < 0.02 / math.sqrt(400)
    ifa = convert(copy.deepcopy(base), "ifa", seed=1, backward_gain=3.0)
    b = feedback_layers(ifa)[0][1].feedback_weight
    assert abs(float(b.pow(2).mean().sqrt()) - 3.0 / math.sqrt(400)) < 1e-6


def test_feedback_is_reproducible_from_seed_and_saved_in_state_dict():
    base = build_network("mlp", (20,), 5, depth=3, width=16, seed=4)
    a = convert(copy.deepcopy(base), "fa", seed=9).state_dict()
    b = convert(copy.deepcopy(base), "fa", seed=9).state_dict()
    c = convert(copy.deepcopy(base), "fa", seed=10).state_dict()
    keys = [k for k in a if k.endswith("feedback_weight")]
    assert len(keys) == 3
    assert all(torch.equal(a[k], b[k]) for k in keys)
    assert not any(torch.equal(a[k], c[k]) for k in keys)


def test_feedback_buffers_never_change_while_weights_do():
    model = convert(build_network("mlp", (12,), 5, depth=3, width=16, seed=0), "fa", seed=1)
    before = {n: m.feedback_weight.clone() for n, m in feedback_layers(model)}
    weights = {n: m.weight.detach().clone() for n, m in feedback_layers(model)}
    assert not any(b.requires_grad for b in before.values())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):
        x, y = _batch(False)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, layer in feedback_layers(model):
        assert torch.equal(layer.feedback_weight, before[name])
        assert not torch.equal(layer.weight.detach(), weights[name])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_feedback_bits_store_b_on_its_grid(bits):
    b = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    q = quantize_feedback(b, bits)
    levels = torch.unique(q)
    assert len(levels) <= (2 if bits == 1 else 2**bits - 1)
    if bits == 1:
        assert torch.equal(q.abs(), torch.full_like(q, float(b.abs().mean())))
        assert torch.equal(torch.sign(q), torch.where(b >= 0, 1.0, -1.0))
    else:
        scale = b.abs().max() / (2 ** (bits - 1) - 1)
        assert torch.allclose(q / scale, torch.round(q / scale), atol=1e-5)
        assert float((q - b).abs().max()) <= float(scale) / 2 + 1e-6
    assert torch.equal(quantize_feedback(b, 32), b)
    with pytest.raises(InputError, match="feedback_bits"):
        quantize_feedback(b, 0)


def test_update_angle_is_zero_for_aligned_feedback_and_last_layer():
    base = _nets(False, False)
    fa = convert(copy.deepcopy(base), "fa", seed=1)
    x, y = _batch(False)
    angles = update_angles(fa, [(x, y)], nn.functional.cross_entropy)
    names = list(angles)
    assert angles[names[-1]] < 1e-3 and all(angles[n] > 1 for n in names[:-1])
    _set_feedback_to_forward(fa)
    assert max(update_angles(fa, [(x, y)], nn.functional.cross_entropy).values()) < 1e-3


def test_quantized_forward_equals_brevitas_forward():
    quant = _nets(True, False)
    converted = convert(copy.deepcopy(quant), "fa", seed=1)
    x, _ = _batch(False)
    quant.eval(), converted.eval()
    assert isinstance(feedback_layers(converted)[0][1], QuantLinear)
    assert torch.equal(quant(x), converted(x))
    quant_cnn = _nets(True, True)
    converted_cnn = convert(copy.deepcopy(quant_cnn), "ifa:30", seed=1)
    xc, _ = _batch(True)
    quant_cnn.eval(), converted_cnn.eval()
    assert torch.equal(quant_cnn(xc), converted_cnn(xc))


def _weight_grad(weight_quant) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layer = QuantLinear(6, 4, bias=False, weight_quant=weight_quant, weight_bit_width=4)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    upstream = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    (layer(x) * upstream).sum().backward()
    return layer.weight.grad, upstream.T @ x  # dL/dW and the straight-through estimate


def test_weight_quantizer_gradient_is_straight_through():
    ours, ste = _weight_grad(WeightQuantSTE)
    assert torch.allclose(ours, ste, atol=1e-6)
    # Brevitas' default differs: the max|W| element also gets the gradient of the scale.
    default, ste = _weight_grad(Int8WeightPerTensorFloat)
    differs = ~torch.isclose(default, ste, atol=1e-6)
    assert int(differs.sum()) == 1


def test_convert_rejects_unsupported_layers_and_double_conversion():
    class MyLinear(nn.Linear):
        pass

    with pytest.raises(InputError, match=r"only nn\.Linear"):
        convert(nn.Sequential(MyLinear(3, 2)), "fa")
    with pytest.raises(InputError, match="no Linear or Conv2d"):
        convert(nn.Sequential(nn.ReLU()), "fa")
    model = convert(nn.Sequential(nn.Linear(3, 2)), "fa")
    assert isinstance(model[0], FeedbackLayer)
    with pytest.raises(InputError, match="already trained"):
        convert(model, "ifa")
    with pytest.raises(InputError, match="padding"):
        convert(nn.Sequential(nn.Conv2d(1, 1, 3, padding="same")), "fa")
    bp = nn.Sequential(nn.Linear(3, 2))
    assert convert(bp, "bp") is bp and not feedback_layers(bp)
