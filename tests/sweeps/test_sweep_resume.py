"""Sweep resumability: Ctrl-C keeps finished points, resuming never writes a point twice."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hwsim.experiments.sweeps
from hwsim.cli import main
from hwsim.models.training import train as real_train

ARGS = [
    "depth",
    "--depths",
    "2,3",
    "--algo",
    "fa,ifa",
    "--seeds",
    "0,1",
    "--dataset",
    "digits",
    "--width",
    "16",
    "--epochs",
    "2",
    "--lr",
    "0.01",
    "--quiet",
]


def _run(out: Path, *extra: str):
    return CliRunner().invoke(main, ["sweep", *ARGS, "--out", str(out), *extra])


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]


def _comparable(summary: dict) -> dict:
    """sweep.json without the wall-clock total (the only field that depends on timing)."""
    return {k: v for k, v in summary.items() if k != "compute_s"}


def _strip_wall(points: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "wall_s"} for p in points]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("reference") / "sweep"
    result = _run(out)
    assert result.exit_code == 0, result.output
    return json.loads((out / "sweep.json").read_text()), _lines(out)


def test_interrupt_between_points_then_resume(tmp_path, monkeypatch, reference):
    out = tmp_path / "sweep"
    calls = []

    def interrupted_train(config, out_dir, **kwargs):
        calls.append(Path(out_dir).name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_train(config, out_dir, **kwargs)

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", interrupted_train)
    result = _run(out)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output
    assert [p["point"] for p in _lines(out)] == calls[:3]
    assert not (out / "sweep.json").exists()

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", real_train)
    result = _run(out)
    assert result.exit_code == 0, result.output
    points = _lines(out)
    assert len(points) == len({p["point"] for p in points}) == 8
    summary = json.loads((out / "sweep.json").read_text())
    assert _comparable(summary) == _comparable(reference[0])
    assert _strip_wall(points) == _strip_wall(reference[1])


def test_interrupt_inside_a_run_resumes_from_its_checkpoint(tmp_path, monkeypatch, reference):
    out = tmp_path / "sweep"
    calls = []

    def train_cut_at_epoch_2(config, out_dir, **kwargs):
        calls.append(Path(out_dir).name)
        if len(calls) == 2:

            def on_epoch(row):
                if row["epoch"] == 2:  # after epoch 1's checkpoint, before epoch 2's
                    raise KeyboardInterrupt

            kwargs["on_epoch"] = on_epoch
        return real_train(config, out_dir, **kwargs)

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", train_cut_at_epoch_2)
    result = _run(out)
    assert result.exit_code == 130, result.output
    assert len(_lines(out)) == 1
    unfinished = out / "runs" / calls[1]
    assert (unfinished / "checkpoint.pt").exists() and not (unfinished / "result.json").exists()

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", real_train)
    assert _run(out).exit_code == 0
    assert _comparable(json.loads((out / "sweep.json").read_text())) == _comparable(reference[0])
    assert _strip_wall(_lines(out)) == _strip_wall(reference[1])


def test_finished_sweep_runs_nothing_again(tmp_path, monkeypatch, reference):
    out = tmp_path / "sweep"
    assert _run(out).exit_code == 0
    before = (out / "points.jsonl").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", no_training)
    result = _run(out)
    assert result.exit_code == 0, result.output
    assert (out / "points.jsonl").read_text() == before


def test_torn_last_line_is_dropped_and_that_point_rerun(tmp_path, reference):
    out = tmp_path / "sweep"
    assert _run(out).exit_code == 0
    lines = (out / "points.jsonl").read_text().splitlines(keepends=True)
    (out / "points.jsonl").write_text("".join(lines[:-1]) + lines[-1][:40])  # crash mid-write
    assert _run(out).exit_code == 0
    repaired = (out / "points.jsonl").read_text().splitlines(keepends=True)
    assert repaired[:-1] == lines[:-1]
    assert _strip_wall(_lines(out)) == _strip_wall(reference[1])
    assert _comparable(json.loads((out / "sweep.json").read_text())) == _comparable(reference[0])


def test_different_spec_in_same_dir_is_exit_2_unless_force(tmp_path):
    out = tmp_path / "sweep"
    assert _run(out).exit_code == 0
    before = (out / "points.jsonl").read_text()
    result = _run(out, "--epochs", "3")  # a later --epochs wins over ARGS'
    assert result.exit_code == 2, result.output
    assert "holds a sweep with a different sweep-spec.json" in result.output
    assert (out / "points.jsonl").read_text() == before
    result = CliRunner().invoke(
        main,
        [
            *("sweep", "angle", "--angles", "0", "--seeds", "0", "--dataset", "digits"),
            *("--width", "16", "--depth", "2", "--epochs", "1", "--no-curvature", "--quiet"),
            *("--out", str(out)),
        ],
    )
    assert result.exit_code == 2, result.output
    result = _run(out, "--epochs", "3", "--force")
    assert result.exit_code == 0, result.output
    points = _lines(out)
    assert len(points) == 8 and all(p["epochs"] == 3 for p in points)


def test_sweep_output_without_its_spec_is_exit_2(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "points.jsonl").write_text("")
    result = _run(out)
    assert result.exit_code == 2, result.output
    assert "is not empty and is not a sweep hwsim wrote (no sweep-spec.json" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["points.jsonl"]
