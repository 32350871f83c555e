"""``hwsim.models.fastquant`` computes brevitas' quantizers bit for bit (``torch.equal``, not
allclose).

Every comparison runs the same model twice from identical state: once on the fast path, once on
brevitas' own path (``reference_quantizers()``), and compares forward outputs, the input
gradient, every parameter's gradient (weights, biases, brevitas' learned activation scales),
then every parameter, buffer and statistics counter after each optimizer step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerTensorFloat
from torch import Tensor, nn

from hwsim.models import build_network, convert, fastquant, feedback_step
from hwsim.models.config import TrainConfig
from hwsim.models.convert import feedback_layers
from hwsim.models.fastquant import reference_quantizers, set_fast_quantizers
from hwsim.models.quant import FastQuantIdentity, FastQuantLinear, FastQuantReLU, quant_relu
from hwsim.models.training import _runtime_stats, _set_runtime_stats, load_run, train

RULES = ["bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp:decay=0.5"]
SHAPES = {"mlp": (1, 8, 8), "cnn": (1, 12, 12)}


def _network(arch: str, rule: str, bits: int, feedback_bits: int, seed: int = 1) -> nn.Module:
    shape = SHAPES[arch]
    net = build_network(
        arch,
        shape,
        5,
        depth=3 if arch == "mlp" else None,
        width=8,
        weight_bits=bits,
        act_bits=bits,
        seed=seed,
    )
    return convert(
        net,
        rule,
        seed=seed + 7,
        feedback_bits=feedback_bits,
        example_input=torch.rand(1, *shape),
    )


def _scalings(model: nn.Module) -> Iterator[Any]:
    for m in model.modules():
        if hasattr(m, "collect_stats_steps") and hasattr(m, "counter"):
            yield m


def _set_collect_steps(model: nn.Module, steps: int) -> None:
    for s in _scalings(model):
        s.collect_stats_steps = steps


def _forward_backward(
    model: nn.Module, x: Tensor, y: Tensor, *, fast: bool
) -> tuple[Tensor, Tensor, dict[str, Tensor | None]]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    if fast:
        out = model(x)
    else:
        with reference_quantizers():
            out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    assert x.grad is not None
    return out.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


def _assert_same_state(fast: nn.Module, ref: nn.Module, where: str) -> None:
    a, b = fast.state_dict(), ref.state_dict()
    assert a.keys() == b.keys(), where
    for k in a:
        assert torch.equal(a[k], b[k]), f"{where}: {k}"
    for s, r in zip(_scalings(fast), _scalings(ref), strict=True):
        assert s.counter == r.counter, where
        assert torch.equal(s.buffer, r.buffer), f"{where}: buffer"
        assert torch.equal(s.value, r.value), f"{where}: value"


def _compare_training(
    fast: nn.Module, ref: nn.Module, shape: tuple[int, ...], steps: int, *, train_mode: bool = True
) -> None:
    """``steps`` Adam steps of both models side by side, everything compared at each one."""
    opt_fast = torch.optim.Adam(fast.parameters(), lr=0.02)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(11)
    for step in range(steps):
        fast.train(train_mode)
        ref.train(train_mode)
        x = torch.rand(16, *shape, generator=generator) * 2 - 0.25
        if step % 2:
            x = x * 4  # beyond the learned scales' range: clamped activations
        y = torch.randint(0, 5, (16,), generator=generator)
        out_f, gx_f, grads_f = _forward_backward(fast, x, y, fast=True)
        out_r, gx_r, grads_r = _forward_backward(ref, x, y, fast=False)
        where = f"step {step}"
        assert torch.equal(out_f, out_r), where
        assert torch.equal(gx_f, gx_r), f"{where}: input grad"
        assert grads_f.keys() == grads_r.keys()
        for name, g in grads_f.items():
            other = grads_r[name]
            assert (g is None) == (other is None), f"{where}: {name}"
            assert g is None or torch.equal(g, other), f"{where}: grad of {name}"
        with feedback_step(fast, 0.02):
            opt_fast.step()
        with reference_quantizers(), feedback_step(ref, 0.02):
            opt_ref.step()
        _assert_same_state(fast, ref, where)


def _fast_path_ran(model: nn.Module) -> bool:
    """Whether every quantized module of ``model`` has a fast-path plan (no silent fallback)."""
    quantized = [m for m in model.modules() if type(m).__name__.startswith(("Fast", "QuantFeed"))]
    plans = [
        m.__dict__.get("_fastquant_weight_plan") or m.__dict__.get("_fastquant_act_plan")
        for m in quantized
    ]
    return bool(quantized) and all(p is not None and p[2] is not None for p in plans)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(("bits", "feedback_bits"), [(8, 8), (8, 32), (4, 4)])
def test_training_steps_are_bit_identical_across_the_statistics_boundary(
    arch: str, rule: str, bits: int, feedback_bits: int
) -> None:
    """Five steps with statistics collected for the first two: collection, the step that
    initialises the learned scale from them, and learned-scale steps, all bit-identical."""
    fast = _network(arch, rule, bits, feedback_bits)
    _set_collect_steps(fast, 2)
    ref = copy.deepcopy(fast)
    _compare_training(fast, ref, SHAPES[arch], steps=5)
    assert _fast_path_ran(fast)
    assert all(s.counter == 3 for s in _scalings(fast))  # past collection: learned scales


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("rule", ["bp", "fa", "usf"])
def test_eval_mode_is_bit_identical_during_and_after_collection(arch: str, rule: str) -> None:
    """Eval mode reads the running buffer during collection and the learned value after it;
    gradients in eval mode (update angles are measured there) are compared too."""
    fast = _network(arch, rule, 8, 8)
    _set_collect_steps(fast, 2)
    ref = copy.deepcopy(fast)
    _compare_training(fast, ref, SHAPES[arch], steps=1, train_mode=False)  # never collected
    _compare_training(fast, ref, SHAPES[arch], steps=1)  # counter 1: buffer in eval
    _compare_training(fast, ref, SHAPES[arch], steps=2, train_mode=False)
    _compare_training(fast, ref, SHAPES[arch], steps=3)  # learned value
    _compare_training(fast, ref, SHAPES[arch], steps=2, train_mode=False)
    fast.eval()
    ref.eval()
    x = torch.rand(4, *SHAPES[arch])
    with torch.no_grad():
        out = fast(x)
        with reference_quantizers():
            assert torch.equal(out, ref(x))


def _relu_pair(bits: int = 8) -> tuple[QuantReLU, QuantReLU]:
    fast = quant_relu(bits)
    return fast, copy.deepcopy(fast)


@pytest.mark.parametrize("n", [5000, 50_000, 200_000, 1_000_000])
@pytest.mark.parametrize("ties", [False, True])
def test_percentile_statistics_of_large_activations(n: int, ties: bool) -> None:
    """Large inputs take the sampled percentile search (the maximum, or a value a few elements
    below it); tied values fall back to ``torch.kthvalue``; value and gradient are exact."""
    fast, ref = _relu_pair()
    generator = torch.Generator().manual_seed(n)
    for step in range(3):
        x = torch.randn(n, generator=generator)
        if ties:
            x[: n // 2] = x.abs().max()  # the percentile is one of many equal values
        x_f, x_r = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out_f = fast(x_f)
        with reference_quantizers():
            out_r = ref(x_r)
        assert torch.equal(out_f, out_r), step
        weights = torch.randn(n, generator=generator)
        (out_f * weights).sum().backward()
        (out_r * weights).sum().backward()
        assert torch.equal(x_f.grad, x_r.grad), step
        f_scale = fast.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
        r_scale = ref.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
        assert torch.equal(f_scale.value.grad, r_scale.value.grad)
        assert torch.equal(f_scale.buffer, r_scale.buffer)


def test_quantizer_corner_values() -> None:
    """Exact halves (round half to even), values clamped at both ends, zeros and negative
    zeros, a weight tensor of zeros (the scale's clamp), at several bit widths."""
    for bits in (2, 3, 4, 8, 12, 16):
        fast, ref = _relu_pair(bits)
        _set_collect_steps(fast, 1)
        _set_collect_steps(ref, 1)
        # after one collection step the learned scale is 1 / (2^bits - 1) · max
        ramp = torch.arange(-8.0, 2**bits + 8.0, 0.5)
        for x in (ramp, ramp, -ramp, torch.tensor([0.0, -0.0, 0.5, 1.5, 2.5])):
            x_f, x_r = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            out_f = fast(x_f)
            with reference_quantizers():
                out_r = ref(x_r)
            assert torch.equal(out_f, out_r)
            assert torch.equal(torch.signbit(out_f), torch.signbit(out_r))
            out_f.sum().backward()
            out_r.sum().backward()
            assert torch.equal(x_f.grad, x_r.grad)
        layer = _quant_layer(bits)
        other = copy.deepcopy(layer)
        for weight in (torch.zeros(3, 6), torch.tensor([[-0.0] * 6] * 3), torch.randn(3, 6)):
            with torch.no_grad():
                layer.weight.copy_(weight)
                other.weight.copy_(weight)
            x = torch.randn(2, 6)
            out = layer(x)
            with reference_quantizers():
                expected = other(x)
            assert torch.equal(out, expected)
            w_fast = fastquant.weight_quant(layer)
            assert w_fast is not None
            with torch.no_grad():
                w_ref = other.quant_weight().value
            assert torch.equal(w_fast, w_ref)
            assert torch.equal(torch.signbit(w_fast), torch.signbit(w_ref))


def _quant_layer(bits: int) -> FastQuantLinear:
    from hwsim.models.quant import quant_linear

    return quant_linear(6, 3, bias=True, weight_bits=bits)  # type: ignore[return-value]


def test_forward_weight_is_brevitas_quant_weight() -> None:
    model = _network("mlp", "usf", 8, 8)
    for _, layer in feedback_layers(model):
        with torch.no_grad():
            expected = layer.quant_weight().value
        assert torch.equal(layer.forward_weight(), expected)


def test_uncovered_quantizers_fall_back_to_brevitas() -> None:
    """Brevitas' default weight quantizer (scale with gradient) is not covered: the layer runs
    brevitas' own forward, and gives brevitas' gradient (the maximum's extra term)."""
    layer = FastQuantLinear(6, 3, bias=True, weight_quant=Int8WeightPerTensorFloat)
    plain = QuantLinear(6, 3, bias=True, weight_quant=Int8WeightPerTensorFloat)
    plain.load_state_dict(layer.state_dict())
    assert fastquant.weight_quant(layer) is None
    x = torch.randn(4, 6)
    layer(x).sum().backward()
    plain(x).sum().backward()
    assert torch.equal(layer.weight.grad, plain.weight.grad)
    relu = FastQuantReLU(bit_width=8, return_quant_tensor=True)  # QuantTensor output: brevitas
    assert fastquant.act_quant(relu, torch.randn(3)) is None


def test_the_switch() -> None:
    layer = _quant_layer(8)
    assert fastquant.fast_quantizers_enabled()
    assert fastquant.weight_quant(layer) is not None
    with reference_quantizers():
        assert not fastquant.fast_quantizers_enabled()
        assert fastquant.weight_quant(layer) is None
    assert fastquant.fast_quantizers_enabled()
    set_fast_quantizers(False)
    try:
        assert fastquant.weight_quant(layer) is None
    finally:
        set_fast_quantizers(True)


def test_environment_variable_selects_the_reference_path() -> None:
    import subprocess
    import sys

    code = "import hwsim.models.fastquant as f; print(f.fast_quantizers_enabled())"
    for value, expected in (("1", "False"), ("0", "True"), ("", "True")):
        env = {**__import__("os").environ, fastquant.REFERENCE_ENV: value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


TINY = TrainConfig(
    dataset="digits",
    train_size=200,
    depth=3,
    width=16,
    epochs=2,
    batch_size=50,
    lr=0.01,
    weight_bits=8,
    act_bits=8,
)


@pytest.mark.parametrize("algo", ["bp", "ifa"])
def test_training_runs_are_identical_on_both_paths(algo: str, tmp_path: Path) -> None:
    """``hwsim.models.train`` from the same seed, fast and reference: the same metrics and
    weights."""
    config = TINY.replace(algo=algo)
    train(config, tmp_path / "fast")
    with reference_quantizers():
        train(config, tmp_path / "ref")
    fast = torch.load(tmp_path / "fast" / "checkpoint.pt", weights_only=True)
    ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    assert fast["model"].keys() == ref["model"].keys()
    assert all(torch.equal(fast["model"][k], ref["model"][k]) for k in fast["model"])
    assert (tmp_path / "fast" / "metrics.jsonl").read_text() == (
        tmp_path / "ref" / "metrics.jsonl"
    ).read_text()


def test_a_trained_checkpoint_loads_and_computes_alike_on_both_paths(tmp_path: Path) -> None:
    """A run trained on the fast path loads into the model of either path, and into plain
    brevitas modules, with equal outputs; training on from it stays bit-identical."""
    train(TINY.replace(algo="fa"), tmp_path / "run")
    _, model, data = load_run(tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    ref = copy.deepcopy(model)
    x = data.x_test[:32]
    model.eval()
    ref.eval()
    with torch.no_grad():
        out = model(x)
        with reference_quantizers():
            assert torch.equal(out, ref(x))
    # plain brevitas modules in place of the hwsim subclasses: same state dict, same outputs
    plain = copy.deepcopy(ref)
    for m in plain.modules():
        base = {FastQuantReLU: QuantReLU, FastQuantIdentity: QuantIdentity}.get(type(m))
        if base is not None:
            m.__class__ = base
    assert not any(isinstance(m, FastQuantReLU | FastQuantIdentity) for m in plain.modules())
    plain.load_state_dict(ckpt["model"])
    with torch.no_grad(), reference_quantizers():
        assert torch.equal(plain(x), out)
    # resume both paths from the checkpoint's collection state and train on side by side
    _set_runtime_stats(model, ckpt["runtime_stats"])
    _set_runtime_stats(ref, ckpt["runtime_stats"])
    assert _runtime_stats(model).keys() == ckpt["runtime_stats"].keys()
    _compare_training(model, ref, tuple(data.input_shape), steps=3)
