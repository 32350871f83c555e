"""Fault injection: ``hwsim train`` and ``hwsim compare`` killed (SIGKILL, and separately SIGINT)
at seeded random moments, then the same command run again, must end exactly where an
uninterrupted run ends: exit 0, the same ``metrics.jsonl`` and ``result.json`` (train), the same
``summary.json`` and per-run metrics (compare). Wall-clock fields are left out of the comparison.

Kill moments are drawn with a fixed seed: half uniformly over the whole command (start-up
included), half shortly after the run directory appears (inside training), so most land while
files are being written. Default run: one SIGKILL point in the middle of ``hwsim train``
(about 20 s); ``-m slow`` tries more (the counts are in the test ids).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
LAUNCH = [sys.executable, "-c", "import sys; from hwsim.cli import main; sys.exit(main())"]
TRAIN = [
    "train", "--algo", "ifa", "--dataset", "digits", "--depth", "2", "--width", "16",
    "--epochs", "3", "--train-size", "300", "--batch-size", "25", "--lr", "0.01", "--quiet",
]  # fmt: skip
EXPERIMENT = """\
version: 1
name: fault-test
description: tiny run for the fault-injection tests
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 2, width: 16}
quantization: {weight_bits: 8, act_bits: 8}
training: {epochs: 2, batch_size: 100, lr: 0.01}
seeds: [0]
rules: [bp, fa]
chips: [edge_sram]
"""
#: Fields that record when, not what: left out of the comparison.
WALL_CLOCK = {"finished_at"}
#: What the out-dir guard says when it refuses to resume a compare killed after summary.json.
#: Seconds a rerun may take at most (a tiny run takes a few).
RERUN_TIMEOUT = 300


def _default_sigint() -> None:
    # A command started in the background by a shell without job control inherits SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: give the child the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_command(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAUNCH, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=RERUN_TIMEOUT
    )


def kill_at(
    args: list[str], cwd: Path, out: Path, delay: float, after_out: bool, sig: int
) -> tuple[str, bool]:
    """Start the command, send ``sig`` ``delay`` s after its start (or after ``out`` appears),
    and wait for it to end; returns how it ended (for failure messages) and whether the signal
    cut it short (it had not ended, and did not exit 0)."""
    process = subprocess.Popen(
        [*LAUNCH, *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    start = time.monotonic()
    if after_out:
        while not out.exists() and process.poll() is None and time.monotonic() - start < 120:
            time.sleep(0.01)
        start = time.monotonic()
    while process.poll() is None and time.monotonic() - start < delay:
        time.sleep(0.005)
    finished_first = process.poll() is not None
    if not finished_first:
        process.send_signal(sig)
    _, stderr = process.communicate(timeout=RERUN_TIMEOUT)
    if sig == signal.SIGINT and not finished_first:
        # Ctrl-C is a clean stop: exit 130 (a traceback only when it lands before the CLI has
        # started, while Python imports).
        assert "Traceback" not in stderr or "KeyboardInterrupt" in stderr, stderr
    interrupted = not finished_first and process.returncode != 0
    return f"rc={process.returncode} finished_first={finished_first}", interrupted


def kill_points(seed: int, count: int, duration: float, phase: float) -> list[tuple[float, bool]]:
    """``count`` seeded (delay, after_out) pairs: half over the whole command, half over the
    time after the output directory appears (training, writing)."""
    rng = random.Random(seed)
    points = []
    for i in range(count):
        if i % 2 == 0:
            points.append((rng.uniform(0.0, duration), False))
        else:
            points.append((rng.uniform(0.0, phase), True))
    return points


def _without_wall_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK}
    if isinstance(value, list):
        return [_without_wall_clock(v) for v in value]
    return value


def _json(path: Path) -> Any:
    return _without_wall_clock(json.loads(path.read_text()))


def _rows(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_outcome(out: Path) -> dict[str, Any]:
    return {"metrics": _rows(out / "metrics.jsonl"), "result": _json(out / "result.json")}


def compare_outcome(out: Path) -> dict[str, Any]:
    runs = sorted((out / "runs").iterdir())
    return {
        "summary": _json(out / "summary.json"),
        "runs": {r.name: train_outcome(r) for r in runs},
        "report": (out / "report.md").is_file(),
    }


def timed_run(args: list[str], cwd: Path, out: Path, done: Path) -> tuple[float, float]:
    """Run the command uninterrupted: ``(whole duration, time from out appearing to done)``."""
    start = time.monotonic()
    process = subprocess.Popen(
        [*LAUNCH, *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    appeared = finished = None
    while process.poll() is None:
        if appeared is None and out.exists():
            appeared = time.monotonic()
        if finished is None and done.exists():
            finished = time.monotonic()
        time.sleep(0.005)
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr
    end = time.monotonic()
    return end - start, (finished or end) - (appeared or start)


Reference = tuple[dict[str, Any], float, float]


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    base = tmp_path_factory.mktemp("train-ref")
    duration, phase = timed_run(
        [*TRAIN, "--out", str(base / "run")], base, base / "run", base / "run" / "result.json"
    )
    return train_outcome(base / "run"), duration, phase


@pytest.fixture(scope="module")
def compare_reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    base = tmp_path_factory.mktemp("compare-ref")
    (base / "experiment.yaml").write_text(EXPERIMENT)
    args = ["compare", "--experiment", "experiment.yaml", "--out", "run", "--quiet"]
    duration, phase = timed_run(args, base, base / "run", base / "run" / "report.html")
    return compare_outcome(base / "run"), duration, phase


def _kill_and_rerun_train(
    reference: Reference, base: Path, seed: int, count: int, sig: int
) -> None:
    outcome, duration, phase = reference
    interrupted = 0
    for i, (delay, after_out) in enumerate(kill_points(seed, count, duration, phase)):
        cwd = base / f"k{i}"
        cwd.mkdir()
        out = cwd / "run"
        args = [*TRAIN, "--out", str(out)]
        how, cut = kill_at(args, cwd, out, delay, after_out, sig)
        interrupted += cut
        rerun = run_command(args, cwd)
        point = f"kill point {i}: {sig!r} at {delay:.2f}s (after out: {after_out}), {how}"
        assert rerun.returncode == 0, (point, rerun.stderr)
        assert "Traceback" not in rerun.stderr, (point, rerun.stderr)
        assert train_outcome(out) == outcome, point
    assert interrupted >= count // 2, f"only {interrupted} of {count} kills cut a run short"


def _kill_and_rerun_compare(
    reference: Reference, base: Path, seed: int, count: int, sig: int
) -> None:
    outcome, duration, phase = reference
    for i, (delay, after_out) in enumerate(kill_points(seed, count, duration, phase)):
        cwd = base / f"k{i}"
        cwd.mkdir()
        (cwd / "experiment.yaml").write_text(EXPERIMENT)
        args = ["compare", "--experiment", "experiment.yaml", "--out", "run", "--quiet"]
        how, _ = kill_at(args, cwd, cwd / "run", delay, after_out, sig)
        # A signal after report.html (written last) finds a finished run: the rerun re-prices
        # it from its trained runs, and ends as the reference all the same.
        rerun = run_command(args, cwd)
        point = f"kill point {i}: {sig!r} at {delay:.2f}s (after out: {after_out}), {how}"
        assert rerun.returncode == 0, (point, rerun.stderr)
        assert "Traceback" not in rerun.stderr, (point, rerun.stderr)
        assert compare_outcome(cwd / "run") == outcome, point


# --------------------------------------------------------------------------- default run


@pytest.mark.parametrize(
    "sig",
    [signal.SIGKILL, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
    ids=["sigkill-1", "sigint-1"],
)
def test_train_killed_once_then_rerun_ends_as_uninterrupted(train_reference, tmp_path, sig):
    # One kill in the middle of training (after the run directory appears).
    outcome, _, phase = train_reference
    out = tmp_path / "run"
    args = [*TRAIN, "--out", str(out)]
    delay = random.Random(7).uniform(0.3, 0.6) * phase
    how, cut = kill_at(args, tmp_path, out, delay, True, sig)
    assert cut and not (out / "result.json").exists(), f"the kill came too late: {how}"
    rerun = run_command(args, tmp_path)
    assert rerun.returncode == 0, (how, rerun.stderr)
    assert train_outcome(out) == outcome, how


# --------------------------------------------------------------------------- slow: many points

TRAIN_POINTS = 12
COMPARE_POINTS = 6


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig",
    [signal.SIGKILL, signal.SIGINT],
    ids=[f"sigkill-{TRAIN_POINTS}", f"sigint-{TRAIN_POINTS}"],
)
def test_train_killed_at_many_points(train_reference, tmp_path, sig):
    _kill_and_rerun_train(train_reference, tmp_path, 1000 + int(sig), TRAIN_POINTS, sig)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig",
    [signal.SIGKILL, signal.SIGINT],
    ids=[f"sigkill-{COMPARE_POINTS}", f"sigint-{COMPARE_POINTS}"],
)
def test_compare_killed_at_many_points(compare_reference, tmp_path, sig):
    """Every rerun of the same command ends as the uninterrupted run: a kill before the report
    was finished resumes it; after ``report.html`` the rerun re-prices the finished run, the
    same numbers and environment again."""
    _kill_and_rerun_compare(compare_reference, tmp_path, 2000 + int(sig), COMPARE_POINTS, sig)
