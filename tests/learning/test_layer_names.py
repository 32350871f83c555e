"""One naming of layers (``fc1``, ``conv1``, …) everywhere a layer is named, and runs written
before it (module paths ``'2'``, ``'4'``, …) read and resume with the new names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.layer_names import (
    is_legacy_name,
    legacy_layer_renames,
    legacy_renames,
    rename_layer_keys,
    run_layer_renames,
    stable_layer_names,
)
from hwsim.core.workload import load_workload, workload_from_dict
from hwsim.experiments.analysis import analyze_alignment
from hwsim.models import TrainConfig, layer_names, train, weight_layers
from hwsim.models.run_logs import read_metrics_csv
from hwsim.models.training import build_model, load_data, read_metrics
from hwsim.sim.model_specs import build_workload

MLP = TrainConfig(
    algo="fa", dataset="digits", depth=3, width=16, epochs=1, batch_size=100, train_size=200
)
CNN = TrainConfig(
    algo="ifa",
    dataset="digits",
    model="cnn",
    width=4,
    epochs=1,
    batch_size=100,
    train_size=200,
    weight_bits=8,
    act_bits=8,
)


def test_the_scheme():
    assert stable_layer_names(["linear"] * 3) == ["fc1", "fc2", "fc3"]
    assert stable_layer_names(["conv2d", "conv2d", "linear", "conv2d", "linear"]) == [
        "conv1",
        "conv2",
        "fc1",
        "conv3",
        "fc2",
    ]
    assert stable_layer_names([]) == []
    with pytest.raises(ValueError, match="lstm"):
        stable_layer_names(["linear", "lstm"])


def test_legacy_names_are_recognized_and_nothing_else():
    assert is_legacy_name("2") and is_legacy_name("12") and is_legacy_name("0.1")
    assert not any(is_legacy_name(n) for n in ("fc1", "layers.0", "conv1", "", "1.", "a2"))
    assert legacy_renames(["2", "4", "6"], ["linear"] * 3) == {"2": "fc1", "4": "fc2", "6": "fc3"}
    assert legacy_renames(["1", "4", "8", "10"], ["conv2d", "conv2d", "linear", "linear"]) == {
        "1": "conv1",
        "4": "conv2",
        "8": "fc1",
        "10": "fc2",
    }
    assert legacy_renames(["fc1", "fc2"], ["linear"] * 2) == {}  # already new
    assert legacy_renames(["encoder", "2"], ["linear"] * 2) == {}  # chosen by someone
    assert legacy_renames(["2", "2"], ["linear"] * 2) == {}  # not a run's names
    assert legacy_renames(["2"], ["linear", "linear"]) == {}
    assert legacy_renames(["2"], ["lstm"]) == {}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (MLP, ["fc1", "fc2", "fc3"]),
        (MLP.replace(weight_bits=8, act_bits=8, algo="bp"), ["fc1", "fc2", "fc3"]),
        (CNN, ["conv1", "conv2", "fc1", "fc2"]),
        (CNN.replace(weight_bits=32, act_bits=32, algo="dfa"), ["conv1", "conv2", "fc1", "fc2"]),
    ],
    ids=["mlp-float", "mlp-8bit-bp", "cnn-8bit", "cnn-float-dfa"],
)
def test_layer_names_of_the_networks(config: TrainConfig, expected: list[str]):
    model = build_model(config, load_data(config))
    names = layer_names(model)
    assert list(names.values()) == expected
    # keyed by the modules themselves, in weight_layers' (forward) order
    assert list(names) == [m for _, m in weight_layers(model)]
    # the module paths differ with quantization (an input quantizer shifts them): not names
    assert all(is_legacy_name(path) for path, _ in weight_layers(model))


def test_model_specs_use_the_scheme():
    mlp = build_workload("mlp:784-256-256-10")["layers"]
    assert [layer["name"] for layer in mlp] == ["fc1", "fc2", "fc3"]
    resnet = build_workload("resnet18")["layers"]
    names = [layer["name"] for layer in resnet]
    assert names == [f"conv{i}" for i in range(1, 21)] + ["fc1"]
    # a block with a shortcut: its two 3×3 convolutions, then its 1×1 shortcut
    kernels = [layer["weight_shape"][2:] for layer in resnet[:-1]]
    assert [i + 1 for i, k in enumerate(kernels) if k == [1, 1]] == [8, 13, 18]
    assert resnet[7]["input_shape"] == resnet[5]["input_shape"]  # the block's input


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained(request, tmp_path_factory) -> tuple[TrainConfig, Path]:
    config = MLP if request.param == "mlp" else CNN
    out = tmp_path_factory.mktemp(request.param) / "run"
    train(config, out)
    return config, out


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_same_layer_has_the_same_name_everywhere(trained):
    """workload.json, metrics.jsonl (both angle maps), metrics.csv, ``hwsim analyze`` (JSON and
    table), ``hwsim simulate --workload`` and, for the MLP, ``hwsim simulate --model``."""
    config, out = trained
    expected = list(layer_names(build_model(config, load_data(config))).values())

    document = json.loads((out / "workload.json").read_text())
    assert [layer["name"] for layer in document["layers"]] == expected
    assert [layer.name for layer in load_workload(out / "workload.json").layers] == expected

    lines = (out / "metrics.jsonl").read_text().splitlines()
    for row in map(json.loads, lines):
        assert list(row["alignment_deg"]) == expected
        assert list(row["update_angle_deg"]) == expected
    columns = list(read_metrics_csv(out)[0])
    assert [c.split("/", 1)[1] for c in columns if c.startswith("alignment_deg/")] == expected

    analysis = json.loads(_cli("analyze", "alignment", str(out), "--json"))
    assert analysis["layers"] == expected
    assert list(analysis["alignment_deg"]) == list(analysis["update_angle_deg"]) == expected
    table = _cli("analyze", "alignment", str(out))
    assert all(name in table for name in expected)

    simulated = json.loads(
        _cli("simulate", "--workload", str(out / "workload.json"), "--algo", "fa", "--json")
    )
    assert list(simulated["rules"]["fa"]["loop_orders"]) == expected
    if config.model == "mlp":
        widths = [layer["weight_shape"][1] for layer in document["layers"]]
        spec = "mlp:" + "-".join(map(str, [*widths, document["layers"][-1]["weight_shape"][0]]))
        from_spec = json.loads(_cli("simulate", "--model", spec, "--algo", "fa", "--json"))
        assert list(from_spec["rules"]["fa"]["loop_orders"]) == expected


# --------------------------------------------------------------------------- runs from before


def _make_legacy(run: Path, config: TrainConfig) -> dict[str, str]:
    """Rename a run's layers back to module paths, as hwsim wrote them before; returns
    ``{new: old}``."""
    model = build_model(config, load_data(config))
    old_of = {layer_names(model)[m]: path for path, m in weight_layers(model)}
    workload = json.loads((run / "workload.json").read_text())
    for layer in workload["layers"]:
        layer["name"] = old_of[layer["name"]]
    del workload["update_sparsity"]  # runs from before had none
    (run / "workload.json").write_text(json.dumps(workload, indent=2) + "\n")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        for key in ("alignment_deg", "update_angle_deg"):
            if key in row:
                row[key] = {old_of[k]: v for k, v in row[key].items()}
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "metrics.csv").unlink()  # runs from before had none
    return old_of


LEGACY = MLP.replace(epochs=2, weight_bits=8, act_bits=8)  # quantized: paths '2', '4', '6'


def _interrupted(config: TrainConfig, out: Path) -> None:
    """Train ``config`` into ``out`` and stop at the first step of epoch 2."""
    seen = {"steps": 0}

    def stop(step: int, steps: int) -> None:
        seen["steps"] += 1
        if seen["steps"] == steps + 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, out, on_step=stop)


def test_an_old_run_resumes_with_the_new_names_in_every_file(tmp_path: Path):
    """A run started before the naming, interrupted, then resumed: no file mixes old and new
    names, and the run is the one an uninterrupted new run gives, file for file."""
    whole = tmp_path / "whole"
    train(LEGACY, whole)
    cut = tmp_path / "cut"
    _interrupted(LEGACY, cut)
    old_of = _make_legacy(cut, LEGACY)
    assert sorted(old_of.values()) == ["2", "4", "6"]
    assert "fc1" not in (cut / "metrics.jsonl").read_text()

    train(LEGACY, cut)
    for name in ("metrics.jsonl", "workload.json", "metrics.csv"):
        assert (cut / name).read_text() == (whole / name).read_text(), name
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)["model"]
    reference = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_a_finished_old_run_reads_with_the_new_names_and_is_left_as_it_is(tmp_path: Path):
    run = tmp_path / "run"
    train(MLP, run)
    _make_legacy(run, MLP)
    before = {
        p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".hwsim-manifest"
    }

    rows = read_metrics(run)
    assert all(list(r["alignment_deg"]) == ["fc1", "fc2", "fc3"] for r in rows)
    assert [layer.name for layer in load_workload(run / "workload.json").layers] == [
        "fc1",
        "fc2",
        "fc3",
    ]
    # the report's own (torch-free) reader too
    from hwsim.render.compare_run import _read_metrics

    assert list(_read_metrics(run / "metrics.jsonl")[-1]["alignment_deg"]) == ["fc1", "fc2", "fc3"]
    result = train(MLP, run)  # a finished run: its result, read back
    assert list(result.metrics[-1]["update_angle_deg"]) == ["fc1", "fc2", "fc3"]
    assert analyze_alignment(run)["layers"] == ["fc1", "fc2", "fc3"]
    # nothing but the analysis was written: the run's own files are as they were
    after = {
        p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".hwsim-manifest"
    }
    assert after == before


def test_names_someone_chose_are_left_alone(tmp_path: Path):
    document = build_workload("mlp:8-4-2")
    document["source"] = {**document["source"], "kind": "training-run"}
    for layer, name in zip(document["layers"], ("encoder", "head"), strict=True):
        layer["name"] = name
    assert legacy_layer_renames(document) == {}
    assert [layer.name for layer in workload_from_dict(document).layers] == ["encoder", "head"]
    # module-path names in a document that is not a training run's are names too
    for layer, name in zip(document["layers"], ("0", "1"), strict=True):
        layer["name"] = name
    assert legacy_layer_renames(document) == {"0": "fc1", "1": "fc2"}
    document["source"]["kind"] = "model-spec"
    assert legacy_layer_renames(document) == {}
    assert [layer.name for layer in workload_from_dict(document).layers] == ["0", "1"]
    # a run without a readable workload.json keeps its metrics' names as they are
    run = tmp_path / "run"
    train(MLP, run)
    _make_legacy(run, MLP)
    (run / "workload.json").write_text("{not json")
    assert list(read_metrics(run)[0]["alignment_deg"]) == ["1", "3", "5"]  # float: no quantizer


def test_renaming_a_run_s_rows(tmp_path: Path):
    rows = [
        {"epoch": 0, "alignment_deg": {"2": 1.0, "4": None}, "update_angle_deg": None},
        {"epoch": 1, "alignment_deg": {"2": 2.0, "4": 3.0}, "update_angle_deg": {"2": 4.0}},
    ]
    rename_layer_keys(rows, {"2": "fc1", "4": "fc2"})
    assert rows == [
        {"epoch": 0, "alignment_deg": {"fc1": 1.0, "fc2": None}, "update_angle_deg": None},
        {"epoch": 1, "alignment_deg": {"fc1": 2.0, "fc2": 3.0}, "update_angle_deg": {"fc1": 4.0}},
    ]
    assert run_layer_renames(tmp_path) == {}  # no workload.json
    document = build_workload("mlp:8-4-2")
    document["source"]["kind"] = "training-run"
    for layer, name in zip(document["layers"], ("2", "4"), strict=True):
        layer["name"] = name
    (tmp_path / "workload.json").write_text(json.dumps(document))
    assert run_layer_renames(tmp_path) == {"2": "fc1", "4": "fc2"}
