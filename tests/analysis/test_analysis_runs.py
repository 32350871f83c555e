"""Per-run analyses (hwsim.experiments.analysis) against direct computations on the same run.

One tiny FA run and one tiny BP run are trained per module; every number in the written JSON is
checked against the numerical core called by hand on the model that ``load_run`` rebuilds. The
API writes JSON only: figures are drawn by ``hwsim.render.analysis`` (tests/analysis/
test_analysis_cli.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hwsim.core.errors import InputError
from hwsim.experiments.analysis import (
    EIGEN_TOL,
    analysis_files,
    analyze,
    analyze_alignment,
    analyze_curvature,
    analyze_landscape,
    analyze_robustness,
)
from hwsim.models.analysis import (
    CORRUPTION_NAMES,
    HessianOperator,
    adversarial_accuracy,
    hutchinson_trace,
    input_gradient_fn,
    top_eigenvalues,
    transfer_accuracy,
)
from hwsim.models.config import TrainConfig
from hwsim.models.convert import bp_view
from hwsim.models.training import build_model, evaluate, load_data, load_run, read_metrics, train

TINY = dict(dataset="digits", depth=2, width=16, epochs=2, train_size=300, batch_size=100, lr=0.01)
HESSIAN = dict(samples=200, batch_size=100, probes=10, top_k=2, slq_steps=10, slq_probes=2)
ROBUST = dict(samples=100, eps_list=[0.0, 0.05, 0.2], pgd_steps=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny networks gain nothing from a second thread, and on 2 shared cores the intra-op
    # threads of two processes wait on each other (10x slower HVPs under load).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def runs(one_thread, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for algo in ("fa", "bp"):
        out[algo] = base / algo
        train(TrainConfig(algo=algo, **TINY), out[algo])
    return out


def batches_of(data, samples: int, batch_size: int):
    x, y = data.x_train[:samples], data.y_train[:samples]
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, samples, batch_size)]


def written(run: Path, what: str) -> dict:
    """The JSON analysis ``what`` wrote; no figure beside it, no temporary file left."""
    json_path, png_path = analysis_files(run, what)
    assert not png_path.exists()
    assert not list(json_path.parent.glob("*.tmp"))
    return json.loads(json_path.read_text())


def direct_curvature(model, data, seed: int) -> tuple:
    operator = HessianOperator(bp_view(model).eval(), F.cross_entropy, batches_of(data, 200, 100))
    trace = hutchinson_trace(operator, samples=10, seed=seed)
    top = top_eigenvalues(operator, k=2, tol=EIGEN_TOL, seed=seed)
    return trace, top


def test_hessian_is_measured_on_the_bp_view(runs):
    result = analyze_curvature(runs["fa"], epochs=[0, 2], seed=3, **HESSIAN)
    assert written(runs["fa"], "hessian") == result
    _, model, data = load_run(runs["fa"])
    trace, top = direct_curvature(model, data, seed=3)
    assert result["trace"] == trace.estimate
    assert result["trace_stderr"] == trace.stderr
    assert result["top_eigenvalues"] == list(top.eigenvalues)
    assert result["top_eigenvalues"][0] >= result["top_eigenvalues"][1]
    # Ground truth that the BP view is used: a double backward through the FA model as trained
    # (its backward sends errors through B) gives another number.
    naive = hutchinson_trace(
        HessianOperator(model.eval(), F.cross_entropy, batches_of(data, 200, 100)),
        samples=10,
        seed=3,
    )
    assert abs(naive.estimate - result["trace"]) > 1e-3 * abs(result["trace"])
    assert result["data"]["samples"] == 200 and result["data"]["split"] == "train"
    assert result["view"].startswith("bp") and result["seed"] == 3 and result["probes"] == 10
    assert result["epoch"] == 2 and result["rule"] == "fa"
    density = result["density"]
    assert len(density["grid"]) == len(density["density"]) and density["sigma"] > 0
    assert [sum(row) for row in density["weights"]] == pytest.approx([1.0, 1.0], abs=1e-9)


def test_hessian_by_epoch_matches_each_snapshot(runs):
    result = analyze_curvature(runs["fa"], epochs=[2, 0], seed=3, **HESSIAN)
    assert list(result["by_epoch"]) == ["0", "2"]
    final = result["by_epoch"]["2"]
    assert (
        final["trace"] == result["trace"] and final["top_eigenvalues"] == result["top_eigenvalues"]
    )
    _, model0, data = load_run(runs["fa"], epoch=0)
    trace0, top0 = direct_curvature(model0, data, seed=3)
    assert result["by_epoch"]["0"]["trace"] == trace0.estimate
    assert result["by_epoch"]["0"]["top_eigenvalues"] == list(top0.eigenvalues)
    assert result["by_epoch"]["0"]["trace"] != result["trace"]


def test_hessian_unknown_epoch_names_the_kept_ones(runs):
    with pytest.raises(InputError, match=r"epoch\(s\) 7.*kept: 0, 1, 2"):
        analyze_curvature(runs["fa"], epochs=[0, 7], **HESSIAN)


def test_landscape_center_is_the_model_loss(runs):
    result = analyze_landscape(
        runs["fa"], grid=5, span=0.5, samples=200, batch_size=100, trajectory_grid=5, seed=1
    )
    assert written(runs["fa"], "landscape") == result
    _, model, data = load_run(runs["fa"])
    model.eval()
    with torch.no_grad():
        loss = float(F.cross_entropy(model(data.x_train[:200]), data.y_train[:200]))
    assert result["center_loss"] == pytest.approx(loss, rel=1e-6)
    surface = result["surface"]
    assert surface["alphas"] == [-0.5, -0.25, 0.0, 0.25, 0.5] == surface["betas"]
    assert surface["loss"][2][2] == result["center_loss"]
    assert result["max_loss_increase"] == max(map(max, surface["loss"])) - result["center_loss"]
    operator = HessianOperator(bp_view(model).eval(), F.cross_entropy, batches_of(data, 200, 100))
    top = top_eigenvalues(operator, k=2, seed=1)
    assert surface["direction_eigenvalues"] == list(top.eigenvalues)
    trajectory = result["trajectory"]
    assert trajectory["epochs"] == [0, 1, 2]
    assert trajectory["coordinates"][-1] == [0.0, 0.0]
    assert trajectory["path_loss"][-1] == result["center_loss"]
    _, model0, _ = load_run(runs["fa"], epoch=0)
    with torch.no_grad():
        loss0 = float(F.cross_entropy(model0.eval()(data.x_train[:200]), data.y_train[:200]))
    assert trajectory["path_loss"][0] == pytest.approx(loss0, rel=1e-6)
    assert sum(trajectory["explained_variance"]) == pytest.approx(1.0)  # 3 points: a plane


def test_quantized_run_epoch_zero_is_the_initial_network(tmp_path):
    # Brevitas omits a not-yet-initialized activation scale from the epoch-0 snapshot; the
    # analyses must still rebuild exactly the network training started from.
    config = TrainConfig(algo="ifa", weight_bits=4, act_bits=4, **{**TINY, "epochs": 1})
    run = tmp_path / "q"
    train(config, run)
    curvature = analyze_curvature(run, epochs=[0], seed=5, slq=False, **{**HESSIAN, "top_k": 1})
    landscape = analyze_landscape(run, grid=3, samples=200, batch_size=100, trajectory_grid=3)
    data = load_data(config)
    initial = build_model(config, data).eval()
    trace, _ = direct_curvature(initial, data, seed=5)
    assert curvature["by_epoch"]["0"]["trace"] == trace.estimate
    assert curvature["by_epoch"]["0"]["trace"] != curvature["trace"]
    with torch.no_grad():
        loss0 = float(F.cross_entropy(initial(data.x_train[:200]), data.y_train[:200]))
    assert landscape["trajectory"]["path_loss"][0] == pytest.approx(loss0, rel=1e-6)
    assert "straight-through" in curvature["note"]


def test_alignment_is_what_training_recorded(runs):
    for algo in ("fa", "bp"):
        result = analyze_alignment(runs[algo])
        assert written(runs[algo], "alignment") == result
        rows = [
            json.loads(line) for line in (runs[algo] / "metrics.jsonl").read_text().splitlines()
        ]
        assert result["epochs"] == [0, 1, 2]
        assert result["layers"] == list(rows[0]["alignment_deg"])
        for layer in result["layers"]:
            assert result["alignment_deg"][layer] == [r["alignment_deg"][layer] for r in rows]
            expected = [r.get("update_angle_deg", {}).get(layer) for r in rows]
            assert result["update_angle_deg"][layer] == expected
        means = [sum(r["alignment_deg"].values()) / len(r["alignment_deg"]) for r in rows]
        assert result["mean_alignment_deg"] == pytest.approx(means, rel=1e-12)
    fa = analyze_alignment(runs["fa"])
    assert all(v > 45 for values in fa["alignment_deg"].values() for v in values)
    assert fa["note"] is None
    bp = analyze_alignment(runs["bp"])
    assert all(v is None for values in bp["update_angle_deg"].values() for v in values)
    assert bp["mean_update_angle_deg"] == [None, None, None]
    assert all(v is not None for v in fa["mean_update_angle_deg"])
    assert "BP" in bp["note"]


def test_robustness_fa_three_gradient_sources(runs):
    result = analyze_robustness(runs["fa"], seed=2, **ROBUST)
    assert written(runs["fa"], "robustness") == result
    _, model, data = load_run(runs["fa"])
    x, y = data.x_test[:100], data.y_test[:100]
    clean = evaluate(model, x, y)[1]
    assert result["clean_accuracy"] == clean
    assert result["data"] == {
        "split": "test",
        "samples": 100,
        "selection": "the first 100 samples of the test split (shuffled by data_seed)",
    }
    assert set(result["corruption_accuracy"]) == set(CORRUPTION_NAMES)
    assert all(len(v) == 5 for v in result["corruption_accuracy"].values())
    assert len(result["corruptions"]) == 35 and result["corruptions_skipped"] is None
    assert result["eps"] == [0.0, 0.05, 0.2] and result["clip"] == [0.0, 1.0]
    for attack in ("fgsm", "pgd"):
        by_source = result["adversarial_accuracy"][attack]
        assert set(by_source) == {"true", "feedback", "transfer"}
        for values in by_source.values():
            assert values[0] == clean  # ε = 0 leaves every input unchanged
    # Each source is what its name says: recompute two of them by hand.
    pgd = dict(eps_list=[0.0, 0.05, 0.2], attack="pgd", steps=3, seed=2)
    own = adversarial_accuracy(model.eval(), x, y, grad_fn=input_gradient_fn(model), **pgd)
    assert result["adversarial_accuracy"]["pgd"]["feedback"] == [r.accuracy for r in own]
    surrogate_dir = runs["fa"] / "analysis" / "surrogate"
    assert result["surrogate"]["dir"] == "analysis/surrogate"
    assert result["surrogate"]["trained_here"] and result["surrogate"]["rule"] == "bp"
    assert result["surrogate"]["seed"] == 1 and (surrogate_dir / "result.json").exists()
    _, surrogate, _ = load_run(surrogate_dir)
    transfer = transfer_accuracy(surrogate.eval(), model, x, y, **pgd)
    assert result["adversarial_accuracy"]["pgd"]["transfer"] == [r.accuracy for r in transfer]
    # Same seed, same run, surrogate reused: the same numbers.
    assert analyze_robustness(runs["fa"], seed=2, **ROBUST) == result


def test_robustness_bp_true_gradient_is_its_own_feedback(runs):
    surrogate = runs["fa"] / "analysis" / "surrogate"
    if not surrogate.exists():
        train(TrainConfig(algo="bp", **{**TINY, "seed": 1, "snapshots": False}), surrogate)
    result = analyze_robustness(
        runs["bp"], corruptions=["contrast"], surrogate_dir=surrogate, **ROBUST
    )
    for attack in ("fgsm", "pgd"):
        by_source = result["adversarial_accuracy"][attack]
        assert by_source["true"] == by_source["feedback"]
        assert by_source["true"][-1] < by_source["true"][0]  # ε = 0.2 does hurt a trained model
    assert result["surrogate"] == {
        **result["surrogate"],
        "trained_here": False,
        "dir": str(surrogate),
    }
    assert not (runs["bp"] / "analysis" / "surrogate").exists()
    assert list(result["corruption_accuracy"]) == ["contrast"]


def test_robustness_skips_corruptions_for_non_images(tmp_path):
    run = tmp_path / "synthetic"
    train(TrainConfig(algo="fa", **{**TINY, "dataset": "synthetic", "epochs": 1}), run)
    result = analyze_robustness(run, attacks=["fgsm"], **ROBUST)
    assert result["corruptions"] == [] and result["corruption_accuracy"] == {}
    assert "not images" in result["corruptions_skipped"]
    assert result["mean_corruption_accuracy"] is None and result["clip"] is None
    assert list(result["adversarial_accuracy"]) == ["fgsm"]


def test_dispatch_and_input_errors(runs, tmp_path):
    # wiring: the dispatcher calls the analysis it names (its numbers are checked above)
    assert analyze(runs["bp"], "alignment") == analyze_alignment(runs["bp"])
    with pytest.raises(InputError, match="hessian, landscape, alignment, robustness, all"):
        analyze(runs["bp"], "curvatures")
    with pytest.raises(InputError, match="does not exist"):
        analyze(tmp_path / "nowhere", "hessian")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"missing checkpoint\.pt"):
        analyze(tmp_path / "empty", "robustness")
    with pytest.raises(InputError, match=r"missing config\.yaml, metrics\.jsonl"):
        analyze(tmp_path / "empty", "alignment")
    with pytest.raises(InputError, match="probes do not apply to alignment"):
        analyze(runs["bp"], "alignment", probes=3)
    with pytest.raises(InputError, match="unknown corruption"):
        analyze(runs["bp"], "robustness", corruptions=["fog"])
    with pytest.raises(InputError, match="samples must be a positive integer"):
        analyze(runs["bp"], "hessian", samples=0)


def test_the_api_writes_json_and_draws_nothing(runs):
    # Any run on the same dataset can be the transfer surrogate: no surrogate training here.
    results = analyze(
        runs["bp"],
        "all",
        **{**HESSIAN, "slq": False},
        grid=3,
        trajectory_grid=3,
        eps_list=[0.0, 0.1],
        attacks=["fgsm"],
        corruptions=["contrast"],
        surrogate_dir=runs["fa"],
    )
    folder = runs["bp"] / "analysis"
    assert sorted(p.name for p in folder.iterdir()) == [
        "alignment.json",
        "hessian.json",
        "landscape.json",
        "robustness.json",
    ]
    for what, result in results.items():
        assert json.loads((folder / f"{what}.json").read_text()) == result
    for run in runs.values():
        assert not list(run.rglob("*.png"))


def test_alignment_input_errors_name_the_file_and_line(runs, tmp_path):
    run = tmp_path / "copy"
    run.mkdir()
    config = (runs["fa"] / "config.yaml").read_text()
    lines = (runs["fa"] / "metrics.jsonl").read_text().splitlines()
    (run / "config.yaml").write_text(config)
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "{torn", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match=r"metrics\.jsonl:2: invalid JSON"):
        analyze_alignment(run)
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert analyze_alignment(run)["alignment_deg"] == analyze_alignment(runs["fa"])["alignment_deg"]
    (run / "config.yaml").write_text("algo: [fa\n")
    with pytest.raises(InputError, match=r"config\.yaml: invalid YAML"):
        analyze_alignment(run)
    (run / "config.yaml").write_text(config + "colour: blue\n")
    with pytest.raises(InputError, match=r"config\.yaml: unknown key\(s\) colour"):
        analyze_alignment(run)


# ------------------------------------------------------------------ curvature at equal loss


def losses(run: Path) -> list[float]:
    """The training loss after each epoch (epoch 0 = init), as training recorded it."""
    return [row["train_loss"] for row in read_metrics(run)]


def test_at_loss_measures_the_first_epoch_at_or_below_the_level(runs):
    recorded = losses(runs["fa"])
    assert recorded[1] < recorded[0]  # the tiny run learns: epoch 1 is below initialization
    # A level between epoch 1's loss and the initial loss is first reached at epoch 1, a
    # level equal to epoch 1's loss too (at or below), neither at the final epoch 2.
    for level in ((recorded[0] + recorded[1]) / 2, recorded[1]):
        result = analyze_curvature(runs["fa"], at_loss=level, seed=3, **HESSIAN)
        at = result["at_loss"]
        assert at["status"] == "measured" and at["reached"] is True and at["note"] is None
        assert at["level"] == level and at["epoch"] == 1 and at["train_loss"] == recorded[1]
        assert at["weights"] == "snapshots/epoch-0001.pt"
        _, model1, data = load_run(runs["fa"], epoch=1)
        trace, top = direct_curvature(model1, data, seed=3)
        assert at["curvature"]["trace"] == trace.estimate
        assert at["curvature"]["top_eigenvalues"] == list(top.eigenvalues)
        # The top level stays the final model's, and differs from epoch 1's.
        assert result["trace"] != at["curvature"]["trace"]
    # At or above the initial loss: epoch 0, the initialization snapshot.
    at = analyze_curvature(runs["fa"], at_loss=recorded[0], seed=3, **HESSIAN)["at_loss"]
    assert at["epoch"] == 0 and at["weights"] == "snapshots/epoch-0000.pt"


def test_at_loss_reached_only_at_the_end_is_the_final_model(runs):
    recorded = losses(runs["bp"])
    assert recorded[2] < min(recorded[:2])
    result = analyze_curvature(runs["bp"], at_loss=recorded[2], seed=3, **HESSIAN)
    at = result["at_loss"]
    assert at["epoch"] == 2 and at["weights"].startswith("checkpoint.pt")
    assert at["curvature"]["trace"] == result["trace"]


def test_at_loss_never_reached_is_recorded_not_raised(runs):
    recorded = losses(runs["fa"])
    lowest = min(recorded)
    epoch = recorded.index(lowest)
    result = analyze_curvature(runs["fa"], at_loss=lowest / 2, seed=3, **HESSIAN)
    assert written(runs["fa"], "hessian") == result
    at = result["at_loss"]
    assert at["status"] == "never reached" and at["reached"] is False
    assert at["epoch"] is None and at["curvature"] is None and at["train_loss"] is None
    assert at["lowest_train_loss"] == lowest and at["lowest_epoch"] == epoch
    assert at["note"] == f"never reached (lowest loss {lowest:.4g} at epoch {epoch})"
    # No silent fallback: the final model's numbers stay where they always were, apart.
    assert math.isfinite(result["trace"])


def test_at_loss_without_the_snapshot_says_so(tmp_path):
    run = tmp_path / "nosnap"
    train(TrainConfig(algo="bp", **{**TINY, "snapshots": False}), run)
    recorded = losses(run)
    at = analyze_curvature(run, at_loss=recorded[1], **HESSIAN)["at_loss"]
    assert at["status"] == "no snapshot" and at["reached"] is True and at["epoch"] == 1
    assert at["curvature"] is None
    assert "kept no weights of epoch 1" in at["note"] and "snapshots" in at["note"]


@pytest.mark.parametrize("level", [0, -0.5, float("nan"), float("inf"), True])
def test_at_loss_must_be_a_positive_loss(runs, level):
    with pytest.raises(InputError, match="at_loss must be a positive training loss"):
        analyze_curvature(runs["fa"], at_loss=level, **HESSIAN)


def test_without_at_loss_the_block_is_null(runs):
    assert analyze_curvature(runs["fa"], **HESSIAN)["at_loss"] is None


# ------------------------------------------------------------------ devices


def test_results_record_the_device_and_cuda_without_cuda_is_an_input_error(runs):
    result = analyze_curvature(runs["fa"], device="cpu", **HESSIAN)
    assert result["device"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            analyze_curvature(runs["fa"], device="cuda", **HESSIAN)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_analyses_on_cuda_match_the_cpu(runs):
    # The same draws on both devices (CPU generators); only summation order differs.
    cpu = analyze_curvature(runs["fa"], at_loss=losses(runs["fa"])[1], **HESSIAN)
    gpu = analyze_curvature(runs["fa"], at_loss=losses(runs["fa"])[1], device="cuda", **HESSIAN)
    assert gpu["device"].startswith("cuda")
    for key in ("trace", "loss"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-3)
        assert gpu["at_loss"]["curvature"][key] == pytest.approx(
            cpu["at_loss"]["curvature"][key], rel=1e-3
        )
    assert gpu["top_eigenvalues"] == pytest.approx(cpu["top_eigenvalues"], rel=1e-3)
    cpu_r = analyze_robustness(runs["fa"], **ROBUST)
    gpu_r = analyze_robustness(runs["fa"], device="cuda", **ROBUST)
    assert gpu_r["clean_accuracy"] == cpu_r["clean_accuracy"]
    for attack, sources in cpu_r["adversarial_accuracy"].items():
        for source, values in sources.items():
            got = gpu_r["adversarial_accuracy"][attack][source]
            assert got == pytest.approx(values, abs=0.03)
    cpu_l = analyze_landscape(runs["fa"], grid=3, samples=200, batch_size=100)
    gpu_l = analyze_landscape(runs["fa"], grid=3, samples=200, batch_size=100, device="cuda")
    assert gpu_l["center_loss"] == pytest.approx(cpu_l["center_loss"], rel=1e-4)
