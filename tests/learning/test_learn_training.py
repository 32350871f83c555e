"""The training loop: run directory, determinism, resume, divergence, workload record."""

import json

import pytest
import torch
import yaml

from hwsim.core.errors import InputError
from hwsim.models import TrainConfig, learning_rate, load_run, train
from hwsim.models.convert import feedback_layers

TINY = dict(dataset="digits", depth=3, width=32, epochs=2, batch_size=50, train_size=500, lr=3e-3)


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contents(tmp_path):
    config = TrainConfig(algo="ifa", **TINY)
    result = train(config, tmp_path / "run")
    run = tmp_path / "run"
    assert result.status == "completed" and result.epochs_completed == 2
    assert TrainConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text())) == config
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "alignment_deg"):
        assert all(key in r for r in rows)
    assert all(abs(a) < 1e-3 for a in rows[0]["alignment_deg"].values())  # IFA starts aligned
    assert set(rows[0]["update_angle_deg"]) == set(rows[0]["alignment_deg"])
    assert rows[-1]["test_accuracy"] > rows[0]["test_accuracy"] + 0.2  # it learns
    assert result.final_test_accuracy == rows[-1]["test_accuracy"]
    assert json.loads((run / "result.json").read_text())["status"] == "completed"


def test_workload_record(tmp_path):
    config = TrainConfig(algo="fa", weight_bits=8, act_bits=6, feedback_bits=4, **TINY)
    train(config, tmp_path / "run")
    w = json.loads((tmp_path / "run" / "workload.json").read_text())
    assert (w["format"], w["version"]) == ("hwsim-workload", 2)
    # 500 samples, batch 50: 10 full batches, no partial one.
    assert w["batches"] == [{"batch_size": 50, "count": 10}] and w["steps_per_epoch"] == 10
    assert w["epochs"] == 2 and w["train_samples"] == 500 and w["input_shape"] == [1, 8, 8]
    assert [layer["weight_shape"] for layer in w["layers"]] == [[32, 64], [32, 32], [10, 32]]
    assert [layer["macs_per_sample"] for layer in w["layers"]] == [2048, 1024, 320]
    first = w["layers"][0]
    assert (first["weight_bits"], first["activation_bits"], first["feedback_bits"]) == (8, 6, 4)
    assert first["error_bits"] == 32 and first["input_shape"] == [64]
    # brevitas integer quantizers for W and activations, B on an integer grid; errors float32
    formats = ("weight_format", "activation_format", "feedback_format", "error_format")
    expected = ("int8", "int6", "int4", "fp32")
    assert all(tuple(layer[k] for k in formats) == expected for layer in w["layers"])
    assert all(0 <= layer["activation_sparsity"] <= 1 for layer in w["layers"])
    assert w["optimizer"] == {"name": "adam", "state_tensors_per_weight": 2}


def test_errors_flow_as_float32_through_a_quantized_network():
    """What the record's ``error_format: fp32`` says: brevitas quantizes W and activations, B
    sits on an integer grid, and the errors each weight layer receives are float32 tensors."""
    from hwsim.models.convert import convert, weight_layers
    from hwsim.models.networks import build_network

    model = build_network("mlp", (12,), 5, depth=3, width=16, weight_bits=4, act_bits=4)
    convert(model, "fa", feedback_bits=4)
    seen: dict[str, torch.dtype] = {}
    for name, layer in weight_layers(model):
        layer.register_full_backward_hook(
            lambda _m, _gi, grad_out, name=name: seen.__setitem__(name, grad_out[0].dtype)
        )
    model(torch.rand(8, 12)).square().sum().backward()
    assert len(seen) == len(weight_layers(model)) == 3
    assert set(seen.values()) == {torch.float32}


def test_workload_partial_batch_and_conv(tmp_path):
    changes = {"model": "cnn", "width": 4, "optimizer": "sgd", "depth": None, "batch_size": 64}
    config = TrainConfig(**{**TINY, **changes, "epochs": 1})
    train(config, tmp_path / "run")
    w = json.loads((tmp_path / "run" / "workload.json").read_text())
    assert w["batches"] == [{"batch_size": 64, "count": 7}, {"batch_size": 52, "count": 1}]
    conv = w["layers"][0]
    assert conv["kind"] == "conv2d" and conv["weight_shape"] == [4, 1, 3, 3]
    assert conv["output_shape"] == [4, 8, 8] and conv["macs_per_sample"] == 4 * 64 * 9
    assert conv["stride"] == [1, 1] and conv["padding"] == [1, 1] and conv["groups"] == 1
    assert w["optimizer"]["state_tensors_per_weight"] == 1


def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    config = TrainConfig(algo="fa", **TINY)
    a = train(config, tmp_path / "a").metrics
    b = train(config, tmp_path / "b").metrics
    c = train(config.replace(seed=1), tmp_path / "c").metrics
    assert a == b
    assert a != c


def test_interrupted_run_resumes_to_identical_metrics(tmp_path):
    config = TrainConfig(algo="ifa:30", **{**TINY, "epochs": 3})
    reference = train(config, tmp_path / "ref").metrics

    calls = {"n": 0}

    def interrupt(step, steps):
        calls["n"] += 1
        if calls["n"] == steps + 2:  # inside epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", on_step=interrupt)
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == [0, 1]
    assert not (tmp_path / "run" / "result.json").exists()
    resumed = train(config, tmp_path / "run")
    assert resumed.metrics == reference
    # a finished run is returned as it is, not retrained
    assert train(config, tmp_path / "run").metrics == reference


def test_different_config_in_same_directory_needs_force(tmp_path):
    train(TrainConfig(**TINY), tmp_path / "run")
    with pytest.raises(InputError, match="different config"):
        train(TrainConfig(**{**TINY, "seed": 5}), tmp_path / "run")
    result = train(TrainConfig(**{**TINY, "seed": 5}), tmp_path / "run", force=True)
    assert result.status == "completed"


def test_divergence_ends_run_cleanly(tmp_path):
    config = TrainConfig(**{**TINY, "algo": "fa", "optimizer": "sgd", "lr": 1e12, "depth": 6})
    result = train(config, tmp_path / "run")
    assert result.diverged and result.status == "diverged"
    rows = _metrics(tmp_path / "run")
    assert rows[-1]["diverged"] is True and rows[0]["diverged"] is False
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "diverged"
    # One meaning of final accuracy everywhere: the weights the run ended with, the diverged
    # epoch included; the best accuracy only counts epochs that finished.
    assert result.final_test_accuracy == rows[-1]["test_accuracy"]
    finished = [r["test_accuracy"] for r in rows if not r["diverged"]]
    assert result.best_test_accuracy == max(finished)


def test_checkpoint_carries_config_and_feedback(tmp_path):
    config = TrainConfig(algo="fa", **TINY)
    train(config, tmp_path / "run")
    loaded_config, model, _ = load_run(tmp_path / "run")
    assert loaded_config == config
    assert len(feedback_layers(model)) == 3
    with pytest.raises(InputError, match="no checkpoint"):
        load_run(tmp_path)


def test_learning_rate_schedules():
    assert learning_rate("constant", 0.1, 5, 10) == 0.1
    assert learning_rate("cosine", 0.1, 0, 10) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 5, 10) == pytest.approx(0.05)
    assert [learning_rate("step", 1.0, e, 8) for e in range(8)] == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"algo": "ifa:200"}, "outside"),
        ({"dataset": "imagenet"}, "dataset"),
    ],
)
def test_bad_config_values(changes, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(**changes)


def test_config_from_dict_rejects_unknown_keys_and_types():
    with pytest.raises(InputError, match="unknown key"):
        TrainConfig.from_dict({"learning_rate": 0.1}, source="exp.yaml")
    with pytest.raises(InputError, match=r"exp\.yaml: key 'epochs'"):
        TrainConfig.from_dict({"epochs": "ten"}, source="exp.yaml")


def test_snapshots_keep_weights_of_every_epoch(tmp_path):
    config = TrainConfig(algo="fa", **TINY)
    train(config, tmp_path / "run")
    _, initial, _ = load_run(tmp_path / "run", epoch=0)
    _, last_snapshot, _ = load_run(tmp_path / "run", epoch=2)
    _, final, _ = load_run(tmp_path / "run")
    for (name, a), (_, b), (_, c) in zip(
        initial.state_dict().items(),
        last_snapshot.state_dict().items(),
        final.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(b, c), name  # the last snapshot is the trained model
        if name.endswith("feedback_weight"):
            assert torch.equal(a, b)  # B never changes
    first_weight = next(k for k in final.state_dict() if k.endswith("weight"))
    assert not torch.equal(initial.state_dict()[first_weight], final.state_dict()[first_weight])
    with pytest.raises(InputError, match="epochs kept: 0, 1, 2"):
        load_run(tmp_path / "run", epoch=7)
    train(config.replace(snapshots=False), tmp_path / "off")
    assert not (tmp_path / "off" / "snapshots").exists()


def test_quantized_epoch0_snapshot_loads_to_the_initial_network(tmp_path):
    config = TrainConfig(algo="ifa", weight_bits=4, act_bits=4, **{**TINY, "epochs": 1})
    train(config, tmp_path / "run")
    _, initial, data = load_run(tmp_path / "run", epoch=0)
    from hwsim.models import build_model

    fresh = build_model(config, data)
    initial.eval(), fresh.eval()
    assert torch.equal(initial(data.x_test[:50]), fresh(data.x_test[:50]))
