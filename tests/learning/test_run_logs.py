"""``metrics.csv`` and the TensorBoard log hold exactly what ``metrics.jsonl`` holds, through
resumes and torn tails, and writing them changes no number of a run."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.models import TrainConfig, run_logs, train
from hwsim.models.run_logs import (
    TENSORBOARD_DIR,
    csv_columns,
    flatten_row,
    metrics_csv,
    parse_csv_cell,
    read_metrics_csv,
    tensorboard_wanted,
)

# DFA on the CNN: alignment angles of the convolutions are null (empty cells)
DFA_CNN = TrainConfig(
    algo="dfa",
    dataset="digits",
    model="cnn",
    width=4,
    epochs=2,
    batch_size=100,
    train_size=200,
)
FA_MLP = TrainConfig(
    algo="fa",
    dataset="digits",
    depth=2,
    width=16,
    epochs=2,
    batch_size=100,
    train_size=200,
    weight_bits=8,
    act_bits=8,
)


def _jsonl(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_csv_equals_jsonl(run: Path) -> None:
    """Every row and flat column of metrics.csv is the JSONL's value (empty cell: null or
    absent), in the JSONL's order, with the same columns."""
    rows = _jsonl(run)
    table = read_metrics_csv(run)
    assert len(table) == len(rows)
    assert list(table[0]) == csv_columns(rows)
    for flat_csv, row in zip(table, rows, strict=True):
        flat = flatten_row(row)
        assert set(flat) <= set(flat_csv)
        for column, value in flat_csv.items():
            expected = flat.get(column)
            if isinstance(expected, float) and math.isnan(expected):
                assert math.isnan(value), column
            else:
                assert value == expected and type(value) is type(expected), (column, value)


def test_flattening_and_cells():
    row = {"epoch": 3, "a": {"x": 1.5, "y": None}, "ok": True, "nested": {"b": {"c": 2}}}
    assert flatten_row(row) == {"epoch": 3, "a/x": 1.5, "a/y": None, "ok": True, "nested/b/c": 2}
    text = metrics_csv([row, {"epoch": 4, "late": 0.1}])
    assert text.splitlines() == [
        "epoch,a/x,a/y,ok,nested/b/c,late",
        "3,1.5,,true,2,",
        "4,,,,,0.1",
    ]
    for value in (0.1 + 0.2, 1e-300, 123456789.123456789, 2.0, -0.0):
        assert parse_csv_cell(repr(value)) == value
    assert [parse_csv_cell(c) for c in ("", "true", "false", "7")] == [None, True, False, 7]


@pytest.mark.parametrize("config", [DFA_CNN, FA_MLP], ids=["dfa-cnn", "fa-mlp-8bit"])
def test_csv_equals_jsonl(config: TrainConfig, tmp_path: Path):
    run = tmp_path / "run"
    train(config, run)
    assert_csv_equals_jsonl(run)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    layer = "conv1" if config.model == "cnn" else "fc1"
    assert f"alignment_deg/{layer}" in header and f"update_angle_deg/{layer}" in header
    if config.algo == "dfa":  # a convolution on the path: no angle, an empty cell
        assert read_metrics_csv(run)[0]["alignment_deg/conv1"] is None


def _interrupted(config: TrainConfig, out: Path, **options: Any) -> None:
    seen = {"steps": 0}

    def stop(step: int, steps: int) -> None:
        seen["steps"] += 1
        if seen["steps"] == steps + 1:  # first step of epoch 2: epoch 1 is checkpointed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, out, on_step=stop, **options)


def test_csv_equals_jsonl_after_a_resume_with_a_torn_tail(tmp_path: Path):
    whole = tmp_path / "whole"
    train(FA_MLP, whole)
    cut = tmp_path / "cut"
    _interrupted(FA_MLP, cut)
    assert_csv_equals_jsonl(cut)
    # a crash mid-write of epoch 1's row: the JSONL loses it (torn), the CSV still has it
    metrics = cut / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[:-1]) + lines[-1][:25])
    train(FA_MLP, cut)  # drops the torn line, measures epoch 1 again, trains epoch 2
    assert_csv_equals_jsonl(cut)
    assert (cut / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert metrics.read_text() == (whole / "metrics.jsonl").read_text()


def test_tensorboard_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(run_logs, "tensorboard_available", lambda: True)
    monkeypatch.delenv(run_logs.TENSORBOARD_ENV, raising=False)
    assert tensorboard_wanted(None) and tensorboard_wanted(True) and not tensorboard_wanted(False)
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv(run_logs.TENSORBOARD_ENV, off)
        assert not tensorboard_wanted(None) and tensorboard_wanted(True)
    monkeypatch.setenv(run_logs.TENSORBOARD_ENV, "1")
    assert tensorboard_wanted(None) and not tensorboard_wanted(False)
    monkeypatch.setenv(run_logs.TENSORBOARD_ENV, "maybe")
    with pytest.raises(InputError, match="HWSIM_TENSORBOARD"):
        tensorboard_wanted(None)


def test_without_the_package_it_is_skipped_with_one_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(run_logs, "tensorboard_available", lambda: False)
    monkeypatch.setattr(run_logs, "_noted", False)
    monkeypatch.delenv(run_logs.TENSORBOARD_ENV, raising=False)
    assert not tensorboard_wanted(None)  # not asked for: silent
    with pytest.warns(UserWarning, match="tensorboard package is not installed"):
        assert not tensorboard_wanted(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not tensorboard_wanted(True)  # once
    run = tmp_path / "run"
    train(FA_MLP.replace(epochs=1), run, tensorboard=True)
    assert not (run / TENSORBOARD_DIR).exists() and (run / "metrics.csv").is_file()


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run / TENSORBOARD_DIR))
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def _assert_log_is_jsonl(run: Path) -> None:
    rows = _jsonl(run)
    scalars = _scalars(run)
    for tag in ("test_accuracy", "train_loss", "alignment_deg/fc1", "update_angle_deg/fc2"):
        expected = [(r["epoch"], flatten_row(r)[tag]) for r in rows]
        assert [step for step, _ in scalars[tag]] == [step for step, _ in expected], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert [v for _, v in scalars["diverged"]] == [0.0] * len(rows)
    assert "epoch" not in scalars


def test_tensorboard_log_reads_back_and_changes_no_number(tmp_path: Path):
    pytest.importorskip("tensorboard")
    logged, plain = tmp_path / "logged", tmp_path / "plain"
    train(FA_MLP, logged, tensorboard=True)
    train(FA_MLP, plain, tensorboard=False)
    assert not (plain / TENSORBOARD_DIR).exists()
    _assert_log_is_jsonl(logged)
    for name in ("metrics.jsonl", "metrics.csv", "workload.json", "checkpoint.pt"):
        assert (logged / name).read_bytes() == (plain / name).read_bytes(), name


def test_tensorboard_log_holds_each_epoch_once_after_a_resume(tmp_path: Path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    _interrupted(FA_MLP, run, tensorboard=True)
    assert [step for step, _ in _scalars(run)["test_accuracy"]] == [0, 1]
    train(FA_MLP, run, tensorboard=True)
    _assert_log_is_jsonl(run)
    (events,) = (run / TENSORBOARD_DIR).glob("events.out.tfevents.*")
    # listed in the run's manifest: starting over removes it with the run's other files
    train(FA_MLP, run, force=True, tensorboard=False)
    assert not events.exists() and (run / "metrics.csv").is_file()


def test_train_cli_tensorboard_flag(tmp_path: Path):
    pytest.importorskip("tensorboard")
    args = ["train", "--algo", "fa", "--dataset", "digits", "--depth", "2", "--width", "8"]
    args += ["--epochs", "1", "--train-size", "200", "--batch-size", "100", "--quiet"]
    for flag, written in (("--tensorboard", True), ("--no-tensorboard", False)):
        out = tmp_path / flag
        result = CliRunner().invoke(main, [*args, flag, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (out / TENSORBOARD_DIR).is_dir() == written
        assert (out / "metrics.csv").is_file()
