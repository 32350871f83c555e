"""Each sweep kind through `hwsim sweep`, on tiny settings: points, aggregates, figures."""

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.experiments.sweeps import make_spec, run_sweep
from hwsim.models.config import TrainConfig
from hwsim.render.sweeps import write_sweep_figure

TINY = ["--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "2", "--lr", "0.01"]
TINY += ["--weight-bits", "32", "--act-bits", "32"]  # float: initial angles exactly θ
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sweep(out: Path, *args: str):
    return CliRunner().invoke(main, ["sweep", *args, *TINY, "--out", str(out), "--quiet"])


def _points(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]


def _check_aggregates(summary: dict, points: list[dict]) -> None:
    """Every group's mean ± std equals the statistics of its points' values, seed by seed."""
    for group in summary["groups"]:
        mine = [p for p in points if p["value"] == group["value"] and p["rule"] == group["rule"]]
        assert [p["seed"] for p in mine] == group["seeds"]
        for name, stat in group["metrics"].items():
            values = [p["metrics"][name] for p in mine if p["metrics"][name] is not None]
            assert stat["values"] == values
            assert stat["mean"] == statistics.fmean(values)
            assert stat["std"] == (statistics.stdev(values) if len(values) > 1 else None)


@pytest.fixture(scope="module")
def angle(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sweep") / "angle"
    result = _sweep(out, "angle", "--angles", "0,60", "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "sweep.json").read_text())


def test_angle_points_one_line_each_and_initial_angle_is_theta(angle):
    out, summary = angle
    points = _points(out)
    assert [p["point"] for p in points] == [
        f"theta{t}_{r}_seed{s}" for t, r in ((0, "ifa"), (60, "ifa-60")) for s in (0, 1)
    ]
    assert summary["points"] == summary["points_expected"] == 4 and summary["complete"]
    for p in points:
        first = json.loads((out / p["run_dir"] / "metrics.jsonl").read_text().splitlines()[0])
        assert first["epoch"] == 0
        assert len(first["alignment_deg"]) == 2  # depth 2: both layers
        for layer, degrees in first["alignment_deg"].items():
            assert math.isclose(degrees, p["value"], abs_tol=1e-3), (p["point"], layer)
        assert p["alignment_deg_initial"] == first["alignment_deg"]
        assert p["curves"]["alignment_deg_mean"][0] == pytest.approx(p["value"], abs=1e-3)


def test_angle_sweep_measures_curvature_on_every_point(angle):
    out, summary = angle
    for p in _points(out):
        hessian = json.loads((out / p["run_dir"] / "analysis" / "hessian.json").read_text())
        assert p["metrics"]["hessian_trace"] == hessian["trace"]
        assert p["metrics"]["top_eigenvalue"] == hessian["top_eigenvalues"][0]
        assert hessian["rule"] == p["rule"]
    _check_aggregates(summary, _points(out))
    assert (out / "angle.png").read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((out / "sweep-spec.json").read_text()) == summary["spec"]


def test_angle_curves_are_the_metrics_rows(angle):
    out, _ = angle
    p = _points(out)[3]
    rows = [
        json.loads(line) for line in (out / p["run_dir"] / "metrics.jsonl").read_text().splitlines()
    ]
    assert p["curves"]["test_accuracy"] == [r["test_accuracy"] for r in rows]
    assert p["metrics"]["final_test_accuracy"] == rows[-1]["test_accuracy"]
    assert p["metrics"]["final_train_accuracy"] == rows[-1]["train_accuracy"]


def test_final_test_accuracy_is_the_runs_own(angle):
    """Each point's final_test_accuracy is its run's (result.json, the RunResult definition)."""
    out, _ = angle
    for p in _points(out):
        result = json.loads((out / p["run_dir"] / "result.json").read_text())
        assert p["metrics"]["final_test_accuracy"] == result["final_test_accuracy"]
        assert p["metrics"]["best_test_accuracy"] == result["best_test_accuracy"]
        assert p["status"] == result["status"]


def test_diverged_points_keep_the_accuracy_they_ended_with(tmp_path):
    """SGD at lr 1e12 diverges in epoch 1: the final accuracy is that epoch's row (the weights
    the run ended with), the best leaves it out, the group counts the seeds and its curve has no
    mean at that epoch."""
    out = tmp_path / "diverged"
    args = ["sweep", "depth", "--depths", "2", "--algo", "fa", "--seeds", "0,1", "--quiet"]
    args += ["--dataset", "digits", "--width", "16", "--epochs", "2", "--optimizer", "sgd"]
    result = CliRunner().invoke(main, [*args, "--lr", "1e12", "--out", str(out)])
    assert result.exit_code == 0, result.output
    points = _points(out)
    for p in points:
        rows = [
            json.loads(line)
            for line in (out / p["run_dir"] / "metrics.jsonl").read_text().splitlines()
        ]
        assert p["status"] == "diverged" and rows[-1]["diverged"] and len(rows) == 2
        assert p["metrics"]["final_test_accuracy"] == rows[-1]["test_accuracy"]
        assert p["metrics"]["best_test_accuracy"] == rows[0]["test_accuracy"]
    summary = json.loads((out / "sweep.json").read_text())
    (group,) = summary["groups"]
    assert group["diverged"] == 2
    assert group["metrics"]["final_test_accuracy"]["values"] == [
        p["metrics"]["final_test_accuracy"] for p in points
    ]
    assert group["curves"]["test_accuracy_mean"][1] is None  # no seed left at epoch 1
    assert (out / "depth.png").read_bytes().startswith(PNG_SIGNATURE)


def test_figure_redrawn_from_sweep_json_alone(angle, tmp_path):
    """A directory holding nothing but sweep.json gives the command's figure, byte for byte; a
    changed number in sweep.json gives another figure."""
    out, summary = angle
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "sweep.json", alone / "sweep.json")
    assert write_sweep_figure(alone) == alone / "angle.png"
    assert (alone / "angle.png").read_bytes() == (out / "angle.png").read_bytes()
    assert sorted(p.name for p in alone.iterdir()) == ["angle.png", "sweep.json"]

    changed = json.loads(json.dumps(summary))
    changed["groups"][0]["metrics"]["final_test_accuracy"]["mean"] = 0.01
    (alone / "sweep.json").write_text(json.dumps(changed))
    write_sweep_figure(alone)
    assert (alone / "angle.png").read_bytes() != (out / "angle.png").read_bytes()


def test_figure_without_a_sweep_json_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"sweep\.json: missing"):
        write_sweep_figure(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"kind": "colour", "groups": []}))
    with pytest.raises(InputError, match="unknown sweep kind 'colour'"):
        write_sweep_figure(tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_run_sweep_api_writes_data_only(tmp_path):
    """The API computes and saves: spec, points, aggregates and runs, no figure; the renderer
    draws it afterwards from sweep.json."""
    base = TrainConfig(dataset="digits", depth=2, width=16, epochs=1, lr=0.01, snapshots=False)
    spec = make_spec("depth", base=base, values=(2,), rules=("fa",), seeds=(0,))
    out = tmp_path / "api"
    summary = run_sweep(spec, out)
    assert sorted(p.name for p in out.iterdir()) == [
        ".hwsim-manifest",
        "points.jsonl",
        "runs",
        "sweep-spec.json",
        "sweep.json",
    ]
    assert json.loads((out / "sweep.json").read_text()) == summary
    assert summary["figure"] == "depth.png"
    assert write_sweep_figure(out) == out / "depth.png"
    assert (out / "depth.png").read_bytes().startswith(PNG_SIGNATURE)


def test_depth_sweep(tmp_path):
    out = tmp_path / "depth"
    result = _sweep(out, "depth", "--depths", "2,3", "--algo", "bp,fa", "--seeds", "0,1", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    summary = json.loads((out / "sweep.json").read_text())
    assert printed == summary
    points = _points(out)
    assert len(points) == len({p["point"] for p in points}) == 8
    assert [(g["value"], g["rule"]) for g in summary["groups"]] == [
        (2, "bp"),
        (2, "fa"),
        (3, "bp"),
        (3, "fa"),
    ]
    for p in points:
        config = (out / p["run_dir"] / "config.yaml").read_text()
        assert f"depth: {p['value']}\n" in config and f"algo: {p['rule']}\n" in config
    _check_aggregates(summary, points)
    png = (out / "depth.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    # the figure needs the aggregates only: without it, the runs and the points, it comes back
    for name in ("depth.png", "points.jsonl", "sweep-spec.json"):
        (out / name).unlink()
    shutil.rmtree(out / "runs")
    assert write_sweep_figure(out) == out / "depth.png"
    assert (out / "depth.png").read_bytes() == png


def test_data_sweep_caps_sizes_and_says_so(tmp_path):
    out = tmp_path / "data"
    result = _sweep(
        out, "data", "--sizes", "100,5000", "--algo", "ifa", "--seeds", "0", "--min-steps", "8"
    )
    assert result.exit_code == 0, result.output
    assert "exceed the 1437 training samples of 'digits'" in result.output
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["spec"]["values"] == [100, 1437]
    assert "capped at 1437" in summary["spec"]["notes"][0]
    points = {p["value"]: p for p in _points(out)}
    # 100 samples = 2 steps per epoch: 4 epochs reach the 8 steps asked; 1437: the 2 epochs given
    assert (points[100]["epochs"], points[1437]["epochs"]) == (4, 2)
    run = (out / points[100]["run_dir"] / "config.yaml").read_text()
    assert "train_size: 100\n" in run
    _check_aggregates(summary, list(points.values()))
    for group in summary["groups"]:
        assert group["metrics"]["final_test_accuracy"]["std"] is None  # one seed: no spread


def test_init_sweep_grid_heat_map(tmp_path):
    out = tmp_path / "init"
    result = _sweep(out, "init", "--gains", "0.5,2", "--seeds", "0,1", "--optimizer", "sgd")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sweep.json").read_text())
    cells = [(g["value"], g["rule"]) for g in summary["groups"]]
    assert cells == [
        (gains, rule)
        for gains in ([0.5, 0.5], [0.5, 2.0], [2.0, 0.5], [2.0, 2.0])
        for rule in ("ifa", "fa")
    ]
    for p in _points(out):
        config = (out / p["run_dir"] / "config.yaml").read_text()
        assert f"forward_gain: {p['value'][0]}\n" in config
        assert f"backward_gain: {p['value'][1]}\n" in config
        assert "optimizer: sgd\n" in config
    _check_aggregates(summary, _points(out))
    assert (out / "init.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    "args",
    [
        ["depth", "--angles", "0,30"],
        ["angle", "--algo", "bp"],
        ["angle", "--angles", "0,200"],
        ["depth", "--depths", "2,11"],
        ["data", "--sizes", "50"],
        ["init", "--gains", "0,1"],
        ["depth", "--seeds", "0,0"],
        ["angle", "--angles", "a,b"],
    ],
)
def test_bad_options_exit_2_before_any_run(tmp_path, args):
    out = tmp_path / "bad"
    result = _sweep(out, *args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert not (out / "points.jsonl").exists()


def test_curvature_at_loss_keeps_snapshots_and_records_the_epoch(tmp_path):
    # Level 100 is above any initial cross-entropy of 10 classes (ln 10 ≈ 2.3 at chance): every
    # run reaches it at epoch 0, whose weights only a snapshot holds. Level 1e-9 is never reached.
    out = tmp_path / "high"
    args = ("depth", "--depths", "2", "--algo", "bp", "--seeds", "0")
    result = _sweep(out, *args, "--curvature-at-loss", "100")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sweep.json").read_text())
    spec = summary["spec"]
    assert spec["curvature"]["at_loss"] == 100 and spec["base"]["snapshots"] is True
    assert any("snapshots kept" in note for note in spec["notes"])
    (point,) = _points(out)
    at = point["curvature"]["at_loss"]
    hessian = json.loads((out / point["run_dir"] / "analysis" / "hessian.json").read_text())
    assert at["status"] == "measured" and at["epoch"] == 0
    assert at["weights"] == "snapshots/epoch-0000.pt"
    assert at["train_loss"] == point["curves"]["train_loss"][0]
    assert at["trace"] == hessian["at_loss"]["curvature"]["trace"]
    assert at["top_eigenvalues"] == hessian["at_loss"]["curvature"]["top_eigenvalues"]
    assert point["metrics"]["hessian_trace"] == hessian["trace"] != at["trace"]

    out = tmp_path / "low"
    result = _sweep(out, *args, "--curvature-at-loss", "1e-9")
    assert result.exit_code == 0, result.output
    (point,) = _points(out)
    at = point["curvature"]["at_loss"]
    losses = point["curves"]["train_loss"]
    lowest = min(losses)
    assert at["status"] == "never reached" and at["trace"] is None and at["epoch"] is None
    assert at["note"] == f"never reached (lowest loss {lowest:.4g} at epoch {losses.index(lowest)})"


def test_curvature_at_loss_options_are_checked(tmp_path):
    result = _sweep(tmp_path / "x", "depth", "--no-curvature", "--curvature-at-loss", "0.3")
    assert result.exit_code == 2 and "--curvature-at-loss needs curvature" in result.output
    result = _sweep(tmp_path / "y", "depth", "--curvature-at-loss", "-1")
    assert result.exit_code == 2 and "at_loss must be a positive training loss" in result.output


def test_curvature_settings_without_a_level_keep_their_old_spec():
    from hwsim.experiments.sweeps import CurvatureSettings

    assert "at_loss" not in CurvatureSettings().to_dict()
    assert CurvatureSettings(at_loss=0.25).to_dict()["at_loss"] == 0.25
    spec = make_spec("angle", values=(0.0,), seeds=(0,))
    assert spec.base.snapshots is False and not spec.notes  # no level: no snapshots added
