"""Ground truth for dfa, usf, frsf, brsf and kp: each rule against what it must equal.

- DFA with one hidden layer is FA; DFA on a linear network with ``D_l = W_top⋯W_l`` is BP.
- uSF on weights that are all ``±c`` is BP; frSF/brSF are FA with ``B = |R| ∘ sign(W)``.
- KP with ``B₀ = W₀`` is BP (with decoupled weight decay λ); with any ``B₀`` the gap
  ``‖W − B‖`` shrinks by exactly ``1 − ηλ`` per step, whatever the optimizer.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.models import (
    alignment_angles,
    bp_view,
    build_network,
    convert,
    feedback_layers,
    feedback_step,
    quantize_feedback,
    true_gradients,
    update_angles,
    weight_layers,
    weight_sign,
)

NEW_RULES = ["dfa", "usf", "brsf", "frsf", "kp", "kp:decay=0.5"]


def _net(quantized: bool, conv: bool, depth: int = 3) -> nn.Module:
    bits = 8 if quantized else 32
    if conv:
        return build_network("cnn", (3, 8, 8), 5, width=4, weight_bits=bits, act_bits=bits, seed=3)
    return build_network(
        "mlp", (12,), 5, depth=depth, width=16, weight_bits=bits, act_bits=bits, seed=3
    )


def _batch(conv: bool, seed: int = 7, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 3, 8, 8) if conv else (n, 12), generator=g)
    return x, torch.randint(0, 5, (n,), generator=g)


def _grads(model: nn.Module, x, y, *, with_input: bool = True) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(with_input)
    nn.functional.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    if with_input:
        grads["input"] = x.grad.clone()
    return grads


def _forward_weight(layer: nn.Module) -> torch.Tensor:
    return layer.quant_weight().value.detach() if hasattr(layer, "quant_weight") else layer.weight


# --- DFA --------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
def test_dfa_with_one_hidden_layer_is_fa_bit_for_bit(quantized):
    base = _net(quantized, False, depth=2)
    fa = convert(copy.deepcopy(base), "fa", seed=1)
    dfa = convert(copy.deepcopy(base), "dfa", seed=2)
    (_, fa_top), (_, dfa_top) = feedback_layers(fa)[-1], feedback_layers(dfa)[-1]
    dfa_top.feedback_weight.copy_(fa_top.feedback_weight)  # the same B for the output layer
    x, y = _batch(False)
    # Weight and bias gradients only: below the first layer DFA sends e_top·D_0, FA e_0·B_0.
    got, want = _grads(dfa, x, y, with_input=False), _grads(fa, x, y, with_input=False)
    assert got.keys() == want.keys() and len(got) >= 4
    for name in want:
        assert torch.equal(got[name], want[name]), name


def _retain_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each weight layer's input, kept with its gradient, filled by the next forward."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name):
        def keep(module, inputs):
            x = inputs[0]
            if x.requires_grad and not x.is_leaf:
                x.retain_grad()
            seen[name] = x

        return keep

    for name, m in weight_layers(model):
        m.register_forward_pre_hook(hook(name))
    return seen


def test_dfa_on_a_linear_network_with_path_products_is_bp():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(7, 6), nn.Linear(6, 5), nn.Linear(5, 4), nn.Linear(4, 3))
    base = base.double()
    dfa = convert(copy.deepcopy(base), "dfa", seed=1)
    weights = [m.weight.detach() for _, m in weight_layers(dfa)]
    for index, (_, layer) in enumerate(feedback_layers(dfa)):
        path = weights[-1]
        for w in reversed(weights[index:-1]):
            path = path @ w
        layer.feedback_weight.copy_(path)  # D_l = W_top ⋯ W_l (the top's is W_top)
    x = torch.randn(9, 7, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (9,))
    results = []
    for model in (base, dfa):
        inputs = _retain_inputs(model)
        x.grad = None
        nn.functional.cross_entropy(model(x), y).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        grads.update({f"input of {n}": t.grad.clone() for n, t in inputs.items()})
        results.append(grads)
    bp, got = results
    assert bp.keys() == got.keys() and len(bp) == 12
    for name in bp:
        assert torch.allclose(got[name], bp[name], rtol=1e-10, atol=1e-14), name
    # and with random D it is not BP
    random_dfa = convert(copy.deepcopy(base), "dfa", seed=1)
    assert not torch.allclose(_grads(random_dfa, x.detach(), y)["0.weight"], bp["0.weight"])


def _small_cnn(quantized: bool) -> nn.Module:
    if quantized:
        return build_network("cnn", (2, 8, 8), 5, width=3, weight_bits=8, act_bits=8, seed=1)
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        nn.ReLU(),
        nn.Linear(8, 5),
    )


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
def test_dfa_cnn_sends_output_error_through_d_and_trains(quantized):
    x = torch.rand(4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    model = convert(_small_cnn(quantized), "dfa", seed=3, example_input=x[:1])
    layers = feedback_layers(model)
    n_in = {name: m.feedback_weight.shape for name, m in layers}
    # D_l: (n_out, C·H·W of the layer's input); the output layer's B has W's shape
    assert [tuple(s) for s in n_in.values()][:2] == [(5, 2 * 8 * 8), (5, 3 * 4 * 4)]
    assert n_in[layers[-1][0]] == layers[-1][1].weight.shape
    inputs = _retain_inputs(model)
    logits = model(x)
    logits.retain_grad()
    nn.functional.cross_entropy(logits, y).backward()
    e_top = logits.grad
    for name, layer in layers[1:-1]:  # every layer below the output layer (not the first)
        by_hand = (e_top @ layer.feedback_weight).reshape(inputs[name].shape)
        assert torch.equal(inputs[name].grad, by_hand), name
    before = [m.weight.detach().clone() for _, m in layers]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with feedback_step(model, 1e-2):
        opt.step()
    assert all(not torch.equal(b, m.weight) for b, (_, m) in zip(before, layers, strict=True))
    angles = alignment_angles(model)
    assert list(angles) == ["conv1", "conv2", "fc1", "fc2"]
    assert all(math.isnan(angles[n]) for n in ("conv1", "conv2"))  # a convolution is on the path
    assert all(0 < angles[n] < 180 for n in ("fc1", "fc2"))


def test_dfa_bad_uses_are_clear_errors():
    with pytest.raises(InputError, match="example_input"):
        convert(_small_cnn(False), "dfa")
    with pytest.raises(InputError, match="must be Linear"):
        convert(nn.Sequential(nn.Linear(4, 4), nn.Conv2d(1, 1, 1)), "dfa")
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with pytest.raises(InputError, match="2-D"):
        convert(copy.deepcopy(seq), "dfa", example_input=torch.zeros(2, 5, 4))
    model = convert(seq, "dfa")  # sizes from in_features; the 3-D output shows at forward
    with pytest.raises(InputError, match="2-D"):
        model(torch.zeros(2, 5, 4))


# --- sign-concordant rules ------------------------------------------------------------------


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_usf_on_weights_that_are_all_plus_minus_c_is_exactly_bp(quantized, conv):
    base = _net(quantized, conv)
    with torch.no_grad():
        for _, layer in weight_layers(base):
            layer.weight.copy_(0.1 * weight_sign(layer.weight))
    usf = convert(copy.deepcopy(base), "usf")
    assert all(m.feedback_weight is None for _, m in feedback_layers(usf))  # nothing stored
    x, y = _batch(conv)
    bp, got = _grads(base, x, y), _grads(usf, x, y)
    assert bp.keys() == got.keys()
    for name in bp:
        assert torch.equal(got[name], bp[name]), name
    assert max(alignment_angles(usf).values()) < 1e-3


@pytest.mark.parametrize("rule", ["frsf", "brsf"])
@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
def test_sign_concordant_rules_are_fa_with_magnitudes_times_current_sign(rule, quantized):
    base = _net(quantized, False)
    model = convert(copy.deepcopy(base), rule, seed=4).eval()  # eval: brSF does not redraw
    fa = convert(copy.deepcopy(base), "fa", seed=4).eval()
    for (_, m), (_, f) in zip(feedback_layers(model), feedback_layers(fa), strict=True):
        assert (m.feedback_weight >= 0).all()
        f.feedback_weight.copy_(m.feedback_weight * weight_sign(_forward_weight(m)))
    x, y = _batch(False)
    got, want = _grads(model, x, y), _grads(fa, x, y)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_frsf_magnitudes_stay_fixed_and_sign_follows_w():
    model = convert(_net(False, False), "frsf", seed=1)
    layers = feedback_layers(model)
    magnitudes = [m.feedback_weight.clone() for _, m in layers]
    signs = [weight_sign(m.weight.detach()) for _, m in layers]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(6):
        x, y = _batch(False, seed=step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with feedback_step(model, 0.5):
            opt.step()
    flipped = 0
    for (_, m), mags, sign in zip(layers, magnitudes, signs, strict=True):
        assert torch.equal(m.feedback_weight, mags)
        now = weight_sign(m.weight.detach())
        flipped += int((now != sign).sum())
        assert torch.equal(m.feedback_matrix(), mags * now)
    assert flipped > 0  # some weights changed sign, and B's sign followed them
    _, first = layers[0]
    with torch.no_grad():
        first.weight.neg_()
    assert torch.equal(weight_sign(first.feedback_matrix()), weight_sign(first.weight.detach()))


def _brsf_run(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> list[torch.Tensor]:
    drawn = []
    for step in steps:
        x, y = _batch(False, seed=step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        drawn.append(torch.cat([m.feedback_weight.flatten() for _, m in feedback_layers(model)]))
        with feedback_step(model, 0.1):
            opt.step()
    return drawn


def test_brsf_redraws_every_batch_reproducibly_and_resumes_exactly():
    # float: brevitas' activation statistics are not in a state dict (the checkpoint keeps
    # them: test_a_run_interrupted_mid_run_resumes_exactly covers the quantized run)
    base = _net(False, False)

    def fresh():
        model = convert(copy.deepcopy(base), "brsf", seed=11)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    a, opt_a = fresh()
    initial = torch.cat([m.feedback_weight.flatten() for _, m in feedback_layers(a)])
    run_a = _brsf_run(a, opt_a, range(6))
    b, opt_b = fresh()
    run_b = _brsf_run(b, opt_b, range(6))
    assert all(torch.equal(p, q) for p, q in zip(run_a, run_b, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip([initial, *run_a], run_a, strict=False))
    a.eval()
    a(_batch(False)[0])  # eval forwards do not redraw
    assert torch.equal(feedback_layers(a)[0][1].feedback_weight.flatten()[:10], run_a[-1][:10])
    # resume after 3 steps from the state dicts
    c, opt_c = fresh()
    _brsf_run(c, opt_c, range(3))
    model_state, opt_state = copy.deepcopy(c.state_dict()), copy.deepcopy(opt_c.state_dict())
    assert any(k.endswith("feedback_rng_state") for k in model_state)
    d, opt_d = fresh()
    d.load_state_dict(model_state)
    opt_d.load_state_dict(opt_state)
    rest = _brsf_run(d, opt_d, range(3, 6))
    assert all(torch.equal(p, q) for p, q in zip(rest, run_a[3:], strict=True))
    for (_, p), (_, q) in zip(a.state_dict().items(), d.state_dict().items(), strict=True):
        assert torch.equal(p, q)


# --- Kolen-Pollack --------------------------------------------------------------------------


def _sgd_steps(model, opt, lr, steps, *, kp: bool, decay: float = 0.0):
    for step in range(steps):
        x, y = _batch(False, seed=step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if kp:
            with feedback_step(model, lr):
                opt.step()
        else:  # BP with decoupled weight decay, by hand: W ← W_after − η·λ·W_before
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            with torch.no_grad():
                for _, m in weight_layers(model):
                    w0 = before[[id(p) for p in model.parameters()].index(id(m.weight))]
                    m.weight.copy_((m.weight.double() - lr * decay * w0.double()).float())
        yield step


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_kp_started_at_b_equal_w_stays_there_and_is_bp(decay):
    base = _net(False, False)
    kp = convert(copy.deepcopy(base), f"kp:decay={decay}", seed=1)
    for _, m in feedback_layers(kp):
        m.feedback_weight.copy_(m.weight.detach())
    bp = copy.deepcopy(base)
    lr = 0.2
    opt_kp = torch.optim.SGD(kp.parameters(), lr=lr, momentum=0.9)
    opt_bp = torch.optim.SGD(bp.parameters(), lr=lr, momentum=0.9)
    kp_steps = _sgd_steps(kp, opt_kp, lr, 5, kp=True)
    bp_steps = _sgd_steps(bp, opt_bp, lr, 5, kp=False, decay=decay)
    for _ in zip(kp_steps, bp_steps, strict=True):
        for (_, m), (_, w) in zip(feedback_layers(kp), weight_layers(bp), strict=True):
            assert torch.equal(m.feedback_weight, m.weight.detach())
            assert torch.equal(m.weight, w.weight)
    assert not torch.equal(kp[1].weight, base[1].weight)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_kp_gap_between_w_and_b_shrinks_by_one_minus_lr_decay_per_step(optimizer):
    base = _net(False, False).double()
    lr, decay, steps = 0.05, 2.0, 8
    model = convert(base, f"kp:decay={decay}", seed=2)
    layers = feedback_layers(model)
    gaps0 = [float((m.weight.detach() - m.feedback_weight).norm()) for _, m in layers]
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = _batch(False, seed=step)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x.double()), y).backward()
        with feedback_step(model, lr):
            opt.step()
    for (_, m), gap0 in zip(layers, gaps0, strict=True):
        gap = float((m.weight.detach() - m.feedback_weight).norm())
        assert gap == pytest.approx((1 - lr * decay) ** steps * gap0, rel=1e-6)


def test_kp_feedback_at_few_bits_is_used_on_its_grid_and_accumulates_below_it():
    model = convert(_net(False, False), "kp", seed=1, feedback_bits=6)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)  # steps far below one 6-bit grid step
    before = [m.feedback_weight.clone() for _, m in feedback_layers(model)]
    weights = [m.weight.detach().clone() for _, m in feedback_layers(model)]
    list(_sgd_steps(model, opt, 1e-4, 3, kp=True))
    for (_, m), b, w in zip(feedback_layers(model), before, weights, strict=True):
        used = m.feedback_matrix()
        assert torch.equal(used, quantize_feedback(m.feedback_weight, 6))  # backward: on grid
        assert len(torch.unique(used)) <= 63
        # the stored B took exactly W's updates, although each is below half a grid step
        assert torch.allclose(m.feedback_weight - b, m.weight.detach() - w, atol=1e-7)
        assert not torch.equal(m.feedback_weight, b)


# --- every rule: the BP view, update angles -------------------------------------------------


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
@pytest.mark.parametrize("rule", ["dfa", "usf", "brsf", "frsf", "kp"])
def test_bp_view_gives_true_gradients(rule, quantized, conv):
    base = _net(quantized, conv)
    x, y = _batch(conv)
    model = convert(copy.deepcopy(base), rule, seed=1, example_input=x)
    bp = _grads(base, x, y)
    view = _grads(bp_view(model), x, y)
    with true_gradients(model):
        inside = _grads(model, x, y)
    for name in bp:
        assert torch.equal(bp[name], view[name]) and torch.equal(bp[name], inside[name]), name
    first = f"{weight_layers(model)[0][0]}.weight"
    assert not torch.equal(_grads(model, x, y)[first], bp[first])  # and the rule is not BP
    angles = update_angles(model, [(x, y)], nn.functional.cross_entropy)
    assert len(angles) == len(weight_layers(model)) and angles[list(angles)[-1]] < 1e-3


# --- through training: CLI and exact resume ------------------------------------------------

ARGS = [
    "--dataset",
    "digits",
    "--depth",
    "3",
    "--width",
    "16",
    "--epochs",
    "1",
    "--train-size",
    "200",
    "--batch-size",
    "100",
]


@pytest.mark.parametrize("rule", [*NEW_RULES, "dfa-cnn"])
def test_train_cli_runs_each_new_rule(rule, tmp_path):
    args = [*ARGS, "--weight-bits", "8", "--act-bits", "8"]
    if rule == "dfa-cnn":
        rule, args = "dfa", [a for a in args if a not in ("--depth", "3")] + ["--model", "cnn"]
        args[args.index("--width") + 1] = "2"
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["train", "--algo", rule, *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{rule}: completed" in result.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["update_angle_deg"]
    angles = list(rows[1]["alignment_deg"].values())
    if "--model" in args:
        assert angles[:2] == [None, None] and all(0 < a < 180 for a in angles[2:])
    else:
        assert all(0 <= a < 180 for a in angles)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quant"])
def test_kp_sends_errors_through_b_on_its_grid_not_the_stored_b(quantized):
    # B moved off its 4-bit grid (as KP's updates leave it): the error sent down must use the
    # B the hardware would hold, quantize_feedback(B, 4), in float and brevitas layers alike
    model = convert(_net(quantized, False), "kp", seed=0, feedback_bits=4)
    _, layer = feedback_layers(model)[-1]
    with torch.no_grad():
        layer.feedback_weight.add_(1e-3)
    inputs: dict[str, torch.Tensor] = {}

    def keep(module, args):
        x = args[0].value if hasattr(args[0], "value") else args[0]
        x = x.detach().requires_grad_(True)
        inputs["x"] = x
        return (x,)

    handle = layer.register_forward_pre_hook(keep)
    out = model(_batch(False)[0])
    handle.remove()
    g = torch.randn_like(out)
    out.backward(g)
    grad_x = inputs["x"].grad
    assert torch.allclose(grad_x, g @ quantize_feedback(layer.feedback_weight, 4), atol=1e-6)
    assert not torch.allclose(grad_x, g @ layer.feedback_weight, atol=1e-6)
