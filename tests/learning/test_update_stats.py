"""Update sparsity (``hwsim.models.update_stats``): which stored weight levels each optimizer step
changes, against hand-computed steps, brevitas' own integer weights, and real runs (their
``workload.json`` read back by the simulator's reader, resumed runs byte for byte)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from hwsim.core.workload import load_workload
from hwsim.models import build_network, convert
from hwsim.models.config import TrainConfig
from hwsim.models.convert import layer_names, weight_layers
from hwsim.models.fastquant import reference_quantizers, weight_int
from hwsim.models.quant import quant_linear
from hwsim.models.training import train
from hwsim.models.update_stats import UpdateStats, weight_levels

# 8-bit weights: scale = max|W| / 127. max|W| = 1.27 gives scale 0.01 and levels W / 0.01.
W0 = [[1.27, 0.5, -0.3], [0.1, -1.0, 0.02]]
# dL/dW of the two hand-made steps (powers of two: the straight-through gradient is exact).
G1 = [[0.0, 0.5, 0.0], [-1.0, 0.0, 0.015625]]
G2 = [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def _toy() -> tuple[nn.Module, nn.Module]:
    layer = quant_linear(3, 2, bias=False, weight_bits=8)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W0))
    return nn.Sequential(layer), layer


def _sgd_step(model: nn.Module, layer: nn.Module, opt: torch.optim.Optimizer, grad, stats):
    """One SGD step whose gradient is ``grad``: loss = Σ (x W_qᵀ) ∘ Gᵀ on x = I₃."""
    g = torch.tensor(grad)
    opt.zero_grad()
    (model(torch.eye(3)) * g.T).sum().backward()
    assert torch.equal(layer.weight.grad, g)  # the gradient is exactly the one constructed
    stats.before_step(model)
    opt.step()
    stats.after_step(model)


@pytest.mark.parametrize("flush_every", [None, 1])
def test_a_hand_computed_epoch(flush_every: int | None):
    """Levels before: [[127, 50, -30], [10, -100, 2]] (scale 0.01).

    Step 1 (SGD, lr 0.1): w01 0.5 → 0.45 (level 45, |Δ| 5), w10 0.1 → 0.2 (level 20, |Δ| 10),
    w12 0.02 → 0.0184375 (level 1.84 → 2: its float moved, its level did not). 2 of 6 changed,
    mean |Δ| 7.5.

    Step 2: only w00 moves, 1.27 → 1.17, and with it the scale (1.17 / 127): its own level
    stays 127, but four weights whose floats did not move change level: 0.45 → 48.85 → 49 (Δ 4),
    -0.3 → -32.56 → -33 (Δ 3), 0.2 → 21.71 → 22 (Δ 2), -1.0 → -108.55 → -109 (Δ 9); 0.0184375
    → 2.0013 → 2. 4 of 6 changed, Σ|Δ| 18.

    Epoch: fraction (2/6 + 4/6) / 2 = 0.5; mean |Δ| (15 + 18) / (2 + 4) = 5.5; per weight
    changes [[0, 2, 1], [2, 1, 0]]: max 2, mean 6 / 6 = 1. (``flush_every``: the per-epoch
    counter, int16 here, is added into the run's counter every that many steps.)
    """
    model, layer = _toy()
    assert weight_levels(layer).tolist() == [[127, 50, -30], [10, -100, 2]]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = UpdateStats(model)
    if flush_every is not None:  # the int16 epoch counter flushed after every step: the same
        stats._layers[0].flush_every = flush_every
    _sgd_step(model, layer, opt, G1, stats)
    assert weight_levels(layer).tolist() == [[127, 45, -30], [20, -100, 2]]
    _sgd_step(model, layer, opt, G2, stats)
    assert weight_levels(layer).tolist() == [[127, 49, -33], [22, -109, 2]]
    stats.end_epoch()
    assert stats.document(3) == {
        "measured": "stored weight levels before and after every optimizer step",
        "batch_size": 3,
        "layers": {
            "fc1": {
                "weights": 6,
                "levels": "int8",
                "changed_fraction": [0.5],
                "mean_level_change": [5.5],
                "steps": [2],
                "max_changes_per_weight": 2,
                "mean_changes_per_weight": 1.0,
            }
        },
    }
    assert stats.state_dict()["layers"]["fc1"]["counter"].tolist() == [[0, 2, 1], [2, 1, 0]]
    # a second epoch with one step that changes nothing: its fraction 0, mean change 0.0
    _sgd_step(model, layer, opt, [[0.0] * 3, [0.0] * 3], stats)
    stats.end_epoch()
    fc1 = stats.document(3)["layers"]["fc1"]
    assert fc1["changed_fraction"] == [0.5, 0.0] and fc1["mean_level_change"] == [5.5, 0.0]
    assert fc1["steps"] == [2, 1] and fc1["max_changes_per_weight"] == 2


def test_lr_zero_changes_nothing():
    torch.manual_seed(0)
    net = build_network("mlp", (1, 8, 8), 10, depth=3, width=16, weight_bits=8, act_bits=8)
    model = convert(net, "fa", seed=1, feedback_bits=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = UpdateStats(model)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        stats.before_step(model)
        opt.step()
        stats.after_step(model)
    stats.end_epoch()
    layers = stats.document(32)["layers"]
    assert list(layers) == ["fc1", "fc2", "fc3"]
    for entry in layers.values():
        assert entry["changed_fraction"] == [0.0] and entry["mean_level_change"] == [0.0]
        assert entry["steps"] == [3]
        assert entry["max_changes_per_weight"] == 0 and entry["mean_changes_per_weight"] == 0.0


@pytest.mark.parametrize(("arch", "bits"), [("mlp", 8), ("mlp", 4), ("cnn", 8), ("mlp", 2)])
def test_levels_are_brevitas_own_integer_weights(arch: str, bits: int):
    """The fast levels equal brevitas' ``quant_weight().int()`` on its reference path, over
    training steps that move the scale (Adam at a large rate)."""
    shape = (1, 8, 8) if arch == "mlp" else (1, 12, 12)
    torch.manual_seed(3)
    net = build_network(
        arch,
        shape,
        5,
        depth=3 if arch == "mlp" else None,
        width=8,
        weight_bits=bits,
        act_bits=bits,
        seed=3,
    )
    model = convert(net, "bp", seed=4, feedback_bits=bits)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.rand(16, *shape), torch.randint(0, 5, (16,))
    layers = [m for _, m in weight_layers(model)]
    for _ in range(4):
        for layer in layers:
            assert weight_int(layer) is not None  # the fast path, compared with the reference
            fast = weight_levels(layer)
            with reference_quantizers():
                reference = weight_levels(layer)
                brevitas = layer.quant_weight().int()
            assert fast.dtype == torch.int32
            assert torch.equal(fast, reference) and torch.equal(fast, brevitas.to(torch.int32))
            assert int(fast.abs().max()) == 2 ** (bits - 1) - 1  # max|W| sits on the top level
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_stats_refuse_another_model_and_an_unpaired_step():
    model, _ = _toy()
    other, _ = _toy()
    stats = UpdateStats(model)
    with pytest.raises(ValueError, match="not the model"):
        stats.before_step(other)
    with pytest.raises(RuntimeError, match="without before_step"):
        stats.after_step(model)
    with pytest.raises(ValueError, match="batch_size"):
        stats.document(0)


# 200 samples in batches of 64: 3 batches of 64 and 1 of 8, 4 steps per epoch
TINY = TrainConfig(
    dataset="digits",
    train_size=200,
    depth=2,
    width=16,
    epochs=2,
    batch_size=64,
    weight_bits=8,
    act_bits=8,
    algo="fa",
)


def test_a_training_run_records_its_update_sparsity(tmp_path: Path):
    run = tmp_path / "run"
    train(TINY, run)
    work = load_workload(run / "workload.json")
    sparsity = work.update_sparsity
    assert sparsity is not None and sparsity.batch_size == 64
    assert work.steps_per_epoch == 4
    assert list(sparsity.layers) == [layer.name for layer in work.layers] == ["fc1", "fc2"]
    for layer in work.layers:
        entry = sparsity.layers[layer.name]
        assert entry.levels == layer.weight_format == "int8"
        assert entry.weights == layer.weight_elements
        assert entry.steps == (4, 4)  # = the counts of `batches`, every epoch
        assert len(entry.changed_fraction) == len(entry.mean_level_change) == TINY.epochs
        assert all(0 < f <= 1 for f in entry.changed_fraction)  # Adam at 1e-3 moves levels
        assert all(m is not None and m >= 1 for m in entry.mean_level_change)
        assert 1 <= entry.max_changes_per_weight <= 8
    # the counters are the recorded state: the checkpoint holds the per-weight counts
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    counter = ckpt["update_stats"]["layers"]["fc1"]["counter"]
    fc1 = sparsity.layers["fc1"]
    assert int(counter.max()) == fc1.max_changes_per_weight
    assert float(counter.sum()) / counter.numel() == pytest.approx(fc1.mean_changes_per_weight)


def _interrupted(config: TrainConfig, run: Path) -> None:
    """Train ``config`` into ``run`` and stop it at the first step of epoch 2 (epoch 1 is
    checkpointed)."""
    seen = {"steps": 0}

    def stop_in_epoch_two(step: int, steps: int) -> None:
        seen["steps"] += 1
        if seen["steps"] == steps + 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run, on_step=stop_in_epoch_two)


def test_a_resumed_run_writes_the_same_workload_byte_for_byte(tmp_path: Path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(TINY, whole)
    _interrupted(TINY, cut)
    after_one = json.loads((cut / "workload.json").read_text())["update_sparsity"]
    assert after_one["layers"]["fc1"]["steps"] == [4]  # rewritten after every epoch
    train(TINY, cut)
    assert (cut / "workload.json").read_bytes() == (whole / "workload.json").read_bytes()


def test_an_old_checkpoint_resumes_with_its_epochs_unmeasured(tmp_path: Path):
    """A checkpoint from before update statistics were kept: epoch 1 is recorded with 0 steps,
    epoch 2 exactly as an uninterrupted run measures it, the counters over epoch 2 only."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(TINY, whole)
    _interrupted(TINY, cut)
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    del ckpt["update_stats"]
    torch.save(ckpt, cut / "checkpoint.pt")
    train(TINY, cut)
    full = load_workload(whole / "workload.json").update_sparsity
    part = load_workload(cut / "workload.json").update_sparsity
    assert full is not None and part is not None
    for name, entry in part.layers.items():
        reference = full.layers[name]
        assert entry.steps == (0, 4) and entry.total_steps == 4
        assert entry.changed_fraction == (0.0, reference.changed_fraction[1])
        assert entry.mean_level_change == (0.0, reference.mean_level_change[1])
        assert entry.mean_changes_per_weight == pytest.approx(4 * reference.changed_fraction[1])
        assert entry.max_changes_per_weight <= min(4, reference.max_changes_per_weight)
        assert entry.run_changed_fraction == reference.changed_fraction[1]


def test_float_weights_record_float_levels(tmp_path: Path):
    """32-bit weights have no quantizer: a level is the float itself, and Adam moves every
    weight of the synthetic task (dense inputs) in every step."""
    config = TINY.replace(dataset="synthetic", weight_bits=32, act_bits=32, algo="bp")
    train(config, tmp_path / "run")
    work = load_workload(tmp_path / "run" / "workload.json")
    assert work.update_sparsity is not None
    for layer in work.layers:
        entry = work.update_sparsity.layers[layer.name]
        assert entry.levels == layer.weight_format == "fp32"
        assert entry.mean_level_change == (None, None)
        assert all(f > 0.99 for f in entry.changed_fraction)
        assert entry.max_changes_per_weight == entry.total_steps == 2 * work.steps_per_epoch


def test_a_diverged_epoch_records_the_steps_it_ran(tmp_path: Path):
    config = TINY.replace(weight_bits=32, act_bits=32, optimizer="sgd", lr=1e12, depth=6, epochs=3)
    per_epoch: list[int] = []  # optimizer steps each epoch ran, as on_step saw them

    def count(step: int, steps: int) -> None:
        if step == 1:
            per_epoch.append(0)
        per_epoch[-1] += 1

    result = train(config, tmp_path / "run", on_step=count)
    assert result.diverged
    last_epoch = result.metrics[-1]["epoch"]
    per_epoch += [0] * (last_epoch - len(per_epoch))  # an epoch that diverged before its 1st step
    work = load_workload(tmp_path / "run" / "workload.json")
    assert work.update_sparsity is not None
    for entry in work.update_sparsity.layers.values():
        assert entry.steps == tuple(per_epoch)
    assert per_epoch[-1] < work.steps_per_epoch  # it stopped inside the epoch


def test_the_names_are_the_models_layer_names():
    model, layer = _toy()
    stats = UpdateStats(model)
    assert layer_names(model)[layer] == "fc1" and stats.epochs == 0
    assert stats.document(1)["layers"]["fc1"]["steps"] == []
    assert not math.isnan(stats.document(1)["layers"]["fc1"]["mean_changes_per_weight"])


def _online_bp_config() -> TrainConfig:
    from hwsim.core.resources import EXPERIMENTS_DIR
    from hwsim.experiments.experiment import load_experiment

    online = load_experiment(EXPERIMENTS_DIR / "online.yaml")
    assert (online.seeds, online.rules) == ((0, 1, 2), ("bp", "fa", "ifa"))
    return online.train_config("bp", 0)


def test_the_online_experiment_is_the_default_network_at_batch_one():
    """configs/experiments/online.yaml: the default experiment's network, data, rules and
    seeds, one plain-SGD step per sample."""
    from hwsim.experiments.experiment import default_train_config

    config, default = _online_bp_config(), default_train_config()
    assert (config.batch_size, config.optimizer, config.momentum) == (1, "sgd", 0.0)
    for key in ("dataset", "model", "depth", "width", "weight_bits", "act_bits", "feedback_bits"):
        assert getattr(config, key) == getattr(default, key), key


@pytest.mark.slow
def test_an_online_run_records_batch_one_sparsity(tmp_path: Path):
    """A short run of the online experiment's BP config (100 samples, 1 epoch: 100 steps)."""
    short = _online_bp_config().replace(train_size=100, epochs=1)
    train(short, tmp_path / "run")
    work = load_workload(tmp_path / "run" / "workload.json")
    assert work.batch_size == 1 and work.steps_per_epoch == 100
    assert work.update_sparsity is not None and work.update_sparsity.batch_size == 1
    for entry in work.update_sparsity.layers.values():
        assert entry.steps == (100,) and 0 < entry.run_changed_fraction < 1


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.float32])
def test_level_change_sums_are_exact_beyond_float32(dtype: torch.dtype):
    """Σ|Δlevel| over a step can pass 2^24, where float32 stops holding every integer: the
    chunked sum still equals the integer sum (8-bit levels: |Δ| ≤ 254)."""
    from hwsim.models.update_stats import _FLOAT32_EXACT, _exact_sum

    chunk = _FLOAT32_EXACT // 254
    g = torch.Generator().manual_seed(0)
    values = torch.randint(200, 255, (256, 785), generator=g)  # not a multiple of the chunk
    total = int(values.sum())
    assert total > 2**24
    assert _exact_sum(values.to(dtype), chunk).item() == total
    assert _exact_sum(torch.full((3,), 254, dtype=dtype), chunk).item() == 762
