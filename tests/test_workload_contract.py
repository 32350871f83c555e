"""The workload contract (docs/workload.md): what training records is what the simulator reads.

Writer (``hwsim.models.workload.record_workload``) and reader (``hwsim.core.workload``) share one
definition; these tests tie them together on real training runs and check the simulator's
counts against what the recorded network must do.
"""

from __future__ import annotations

import json
import math

import pytest

from hwsim.core.errors import InputError
from hwsim.core.workload import (
    WORKLOAD_FORMAT,
    WORKLOAD_VERSION,
    load_workload,
    workload_document,
    workload_from_dict,
)
from hwsim.models import TrainConfig, train
from hwsim.models.convert import layer_names, weight_layers
from hwsim.models.training import build_model, load_data
from hwsim.sim import simulate

TINY = dict(dataset="digits", depth=3, width=16, epochs=1, batch_size=64, train_size=300)


@pytest.fixture(scope="module", params=["mlp-float", "cnn-8bit"])
def run(request, tmp_path_factory):
    if request.param == "mlp-float":
        config = TrainConfig(algo="fa", **TINY)
    else:
        config = TrainConfig(
            algo="ifa",
            **{**TINY, "model": "cnn", "width": 4, "depth": None},
            weight_bits=8,
            act_bits=8,
        )
    out = tmp_path_factory.mktemp(request.param) / "run"
    train(config, out)
    return config, out


def test_what_training_records_the_simulator_reads(run):
    config, out = run
    document = json.loads((out / "workload.json").read_text())
    work = load_workload(out / "workload.json")
    assert (document["format"], document["version"]) == (WORKLOAD_FORMAT, WORKLOAD_VERSION)

    data = load_data(config)
    model = build_model(config, data)
    modules = weight_layers(model)
    names = layer_names(model)
    assert [layer.name for layer in work.layers] == [names[m] for _, m in modules]
    prefix = "conv" if config.model == "cnn" else "fc"
    assert work.layers[0].name == f"{prefix}1" and work.layers[-1].name.startswith("fc")
    for layer, (_, module) in zip(work.layers, modules, strict=True):
        assert layer.weight_shape == tuple(module.weight.shape)
        assert layer.bias == (module.bias is not None)
        assert layer.weight_bits == config.weight_bits
        # what training does: brevitas int quantizers, or float32 where a width is 32 (no
        # quantizer); errors are never quantized, float32 (see models/quant.py)
        quantized = "fp32" if config.weight_bits == 32 else f"int{config.weight_bits}"
        assert (layer.weight_format, layer.activation_format) == (quantized, quantized)
        assert layer.feedback_format == quantized and layer.error_format == "fp32"
    # 300 samples in batches of 64: four full batches and one of 44, every epoch.
    assert work.batches == ((64, 4), (44, 1)) and work.steps_per_epoch == 5
    assert work.epochs == config.epochs and work.batch_size == 64


def test_simulated_macs_are_what_the_recorded_network_computes(run):
    """Per step: forward and weight gradient once per layer and sample, errors sent down by
    every layer but the first (the input needs no error)."""
    config, out = run
    work = load_workload(out / "workload.json")
    per_sample = [layer.macs_per_sample for layer in work.layers]
    for layer in work.layers:  # macs from the shapes, independently of the recorder
        if layer.kind == "linear":
            assert layer.macs_per_sample == math.prod(layer.weight_shape)
        else:
            out_channels, in_channels, kh, kw = layer.weight_shape
            spatial = math.prod(layer.output_shape[1:])
            assert layer.macs_per_sample == out_channels * spatial * in_channels * kh * kw
    rule = config.algo
    result = simulate(out / "workload.json", "edge_sram", rule).rules[rule]
    batch = config.batch_size
    by_phase = result.step.counts.macs_by_phase()
    assert by_phase["forward"] == batch * sum(per_sample)
    assert by_phase["backward"] == batch * sum(per_sample[1:])
    assert by_phase["gradient"] == batch * sum(per_sample)
    # float32 errors make every backward and gradient MAC an fp32 MAC; forward MACs run in
    # the weights' format (int8 × int8, or fp32 × fp32 for the float network)
    forward = "fp32" if config.weight_bits == 32 else f"int{config.weight_bits}"
    formats = {phase: fmt for phase, fmt in result.step.counts.macs if phase != "update"}
    assert formats == {"forward": forward, "backward": "fp32", "gradient": "fp32"}


def test_reader_refuses_what_the_writer_would_not_write(run):
    _, out = run
    document = json.loads((out / "workload.json").read_text())
    for key, value in (("format", "other-format"), ("version", WORKLOAD_VERSION + 1)):
        with pytest.raises(InputError, match=key):
            workload_from_dict({**document, key: value}, "doc")
    bad_layer = {**document["layers"][0], "kind": "lstm"}
    with pytest.raises(InputError, match="kind"):
        workload_document(
            source=document["source"],
            input_shape=document["input_shape"],
            batch_size=document["batch_size"],
            layers=[bad_layer],
            optimizer=document["optimizer"],
        )


def test_the_writer_rebuilds_the_recorded_document(run):
    """The recorded file is exactly the contract's document of its own parts."""
    _, out = run
    document = json.loads((out / "workload.json").read_text())
    rebuilt = workload_document(
        source=document["source"],
        input_shape=document["input_shape"],
        batch_size=document["batch_size"],
        layers=document["layers"],
        optimizer=document["optimizer"],
        train_samples=document["train_samples"],
        epochs=document["epochs"],
        batches=document["batches"],
        update_sparsity=document["update_sparsity"],
    )
    assert rebuilt == document
    # measured on every epoch of the run, every layer
    sparsity = load_workload(out / "workload.json").update_sparsity
    assert sparsity is not None and set(sparsity.layers) == {x["name"] for x in document["layers"]}
    assert all(
        entry.steps == (document["steps_per_epoch"],) * document["epochs"]
        for entry in sparsity.layers.values()
    )
